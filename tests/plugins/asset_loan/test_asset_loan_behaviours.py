"""The seven behaviours of asset_loan, one test each (the docstring names which).

1 per-site settings, zone and locale; 2 the ladder on working days; 3 a card press answered at once while
the Open API is slow, nothing lost; 4 status in the asker's locale; 5 a message pushed again answered once;
6 no internal reason or text of the other language; 7 the business clock drives the ladder.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from test_asset_loan_flow import BORROWER, OTHER, SEED, SETTINGS
from test_asset_loan_sdk import message, press, replies_to, rows

import plugins.asset_loan as asset_loan
from engine.feishu.standin.events import card_action_event
from engine.feishu.standin.faults import Fault
from engine.sdk import WorkCalendar
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.asset_loan.config import AssetLoanSettings, ReminderSettings
from plugins.asset_loan.models import AssetInfo, Loan, LoanState
from plugins.asset_loan.rules import reminder_plan
from plugins.asset_loan.web import render_asset

ZONE = ZoneInfo("Asia/Shanghai")
LABELLED = {**SETTINGS, "categories": {
    **SETTINGS["categories"],
    "instrument": {**SETTINGS["categories"]["instrument"], "labels": {"zh_CN": "仪器", "en_US": "instruments"}}}}


def history_rows(env: Any) -> list[dict[str, Any]]:
    table = env.standin.state.table("bascnAssetLoan", "tblAssetHistory")
    return [r["fields"] for r in table["records"].values()] if table else []


async def push_press(env: Any, op: str, asset: str, who: str) -> str:
    """Press a card button through the ingress over HTTP, as Feishu does; the toast it is answered with."""
    value = {"scenario": "asset_loan", "op": op, "asset": asset}
    event = card_action_event(value, who, "om_card_al", "oc_al", tenant_key=env.org.tenant_key or "t_standin")
    result = await env.push("card.action.trigger", event, settle=False)
    answer = result.response_json or {}
    assert result.acknowledged, answer  # not the ingress's 503 "dispatch timed out"
    return str((answer.get("toast") or {}).get("content") or "")


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


# --------------------------------------------------------------------------------- 1 per-site settings


async def test_a_sites_overrides_locale_and_zone_apply_to_its_assets(scenario_harness: Any) -> None:
    """Behaviour 1: a site's settings, zone and locale apply to its assets; the group's elsewhere."""
    config = org_config(
        plugins=["asset_loan"], settings={"asset_loan": SETTINGS},
        sites={"xian": {"name": "西安仁诺", "locale": "en_US", "timezone": "Asia/Urumqi",
                        "settings": {"asset_loan": {"categories": {"default": {}, "instrument": {
                            "default_loan_days": 3, "max_loan_days": 5}}}}}})
    async with scenario_harness({"asset_loan": asset_loan}, config=config) as env:
        env.standin.state.merge_json(SEED)
        await env.begin_at(moments.ordinary_workday())  # no midnight between the borrows and the checks
        rows(env)["recAsset001"]["fields"]["院区"] = "西安仁诺"  # the asset belongs to the Xi'an hospital
        result = await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        assert result.toast and result.toast.startswith("You borrowed")  # the site's locale
        state = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-001"))
        today = (await env.now()).astimezone(ZoneInfo("Asia/Urumqi")).date()
        assert state.loan is not None and state.loan.due == today + timedelta(days=3)  # the site's rule
        group = await env.deliver(press("borrow", "RD-OSC-002", BORROWER))  # no site: the group's rule
        assert group.toast and "请于" in group.toast
        other = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-002"))
        assert other.loan is not None and other.loan.due == (await env.now()).astimezone(ZONE).date() + timedelta(7)


# ------------------------------------------------------------------------------------- 2 working days


async def test_the_loans_reminder_goes_out_on_the_last_workday_before_a_day_off(scenario_harness: Any) -> None:
    """Behaviour 2: the loan ladder runs on the working days (a reminder before the days off)."""
    async with scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        calendar = WorkCalendar(ZONE)
        today = (await env.begin_at(moments.ordinary_workday())).date()
        # a due date on a day off whose day before is off too (a weekend), within the category's 14 days
        due = next(today + timedelta(days=n) for n in range(3, 15)
                   if not calendar.is_workday(today + timedelta(days=n))
                   and not calendar.is_workday(today + timedelta(days=n - 1)))
        reminder_day = calendar.previous_workday(due)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER, due=due.isoformat()))
        sent = len(env.messages(to=BORROWER))  # the borrow card
        await env.advance_to(datetime.combine(reminder_day, time(8, 59), tzinfo=ZONE))
        assert len(env.messages(to=BORROWER)) == sent
        await env.advance_to(datetime.combine(reminder_day, time(9, 1), tzinfo=ZONE))
        assert len(env.messages(to=BORROWER)) == sent + 1  # one reminder, before the days off
        await env.advance_to(datetime.combine(due, time(9, 1), tzinfo=ZONE))
        assert len(env.messages(to=BORROWER)) == sent + 1  # nothing on the days off


# ------------------------------------------------------------------------- 3 answered while the API is slow


async def test_a_press_is_answered_while_the_open_api_is_slow_and_nothing_is_lost(scenario_harness: Any) -> None:
    """Behaviour 3: a borrow press is answered with the plugin's toast while every Open API call takes 4 s; a
    second borrower pressing meanwhile is refused by the decided state; the row, the history row and the
    card happen exactly once afterwards."""
    async with scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        # no skip of the clock: activities run with the wall clock frozen at the workflow's time, and the
        # second press is signed (and checked by the ingress) while the first one's run
        await env.deliver(message("资产 RD-OSC-001", event_id="ev-ask", message_id="om_ask"))  # the asset's run
        cards_before = len(env.messages(to=BORROWER))
        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        first = await push_press(env, "borrow", "RD-OSC-001", BORROWER)
        second = await push_press(env, "borrow", "RD-OSC-001", OTHER)
        assert first.startswith("已借出 示波器 Tek MDO34") and "请于" in first, first
        assert "已被" in second and "借出" in second and BORROWER not in second, second
        env.standin.clear_faults()
        await env.settle()
        row = rows(env)["recAsset001"]["fields"]
        assert row["状态"] == "借出" and [p["id"] for p in row["借用人"]] == [BORROWER]
        assert [h["动作"] for h in history_rows(env)] == ["borrow"]
        assert len(env.messages(to=BORROWER)) == cards_before + 1 and not env.messages(to=OTHER)
        state = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-001"))
        assert state.loan is not None and state.loan.borrower_name == "李娜"  # looked up after the answer


# ------------------------------------------------------------------------------------------- 4 status


async def test_status_is_answered_in_the_askers_locale(scenario_harness: Any) -> None:
    """Behaviour 4: "<key> status" / "<key> 状态" answers with the state in the asker's locale."""
    async with scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        await env.deliver(message("RD-OSC-001 status", event_id="ev-en", message_id="om_en", chat_type="group",
                                  mentions_bot=True))
        (english,) = replies_to(env, "om_en")
        assert "on loan" in english.text and "Borrower: 李娜" in english.text and "借" not in english.text
        await env.deliver(message("RD-OSC-001 状态", event_id="ev-zh", message_id="om_zh", chat_type="group",
                                  mentions_bot=True))
        (chinese,) = replies_to(env, "om_zh")
        assert "借出" in chinese.text and "借用人：李娜" in chinese.text
        await env.deliver(message("RD-NONE-404 status", event_id="ev-none", message_id="om_none"))
        (missing,) = replies_to(env, "om_none")
        assert missing.text.startswith("No loans recorded for RD-NONE-404")


# ---------------------------------------------------------------------------------------- 5 redelivery


async def test_a_message_pushed_again_under_a_new_event_id_is_answered_once(scenario_harness: Any) -> None:
    """Behaviour 5: a message pushed again under a new event id (same message_id) is answered once."""
    async with scenario_harness({"asset_loan": asset_loan}, org_settings={"asset_loan": SETTINGS}) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        await env.deliver(message("我借了什么", event_id="ev-first", message_id="om_dup_1"))
        await env.deliver(message("我借了什么", event_id="ev-second", message_id="om_dup_1"))
        (reply,) = replies_to(env, "om_dup_1")
        assert "RD-OSC-001" in reply.text and reply.text.startswith("您当前借用")
        await env.deliver(message("what do I have", event_id="ev-en", message_id="om_what"))
        (english,) = replies_to(env, "om_what")
        assert english.text.startswith("Items you have (1)")  # the asker's language, in a zh_CN organization


# ------------------------------------------------------------------------ 6 what users see, both locales


async def test_users_see_labels_in_their_language_never_internal_reasons(scenario_harness: Any) -> None:
    """Behaviour 6: refusals name the category by its label and the borrower by name (never an open_id or a
    category key), and the scan page shows the category's label, in zh_CN and en_US alike."""
    config = org_config(plugins=["asset_loan"], settings={"asset_loan": LABELLED},
                        sites={"xian": {"name": "西安仁诺", "locale": "en_US"}})
    async with scenario_harness({"asset_loan": asset_loan}, config=config) as env:
        env.standin.state.merge_json(SEED)
        today = (await env.begin_at(moments.ordinary_workday())).date()
        rows(env)["recAsset002"]["fields"]["院区"] = "西安仁诺"  # an English-speaking hospital's instrument
        too_late = (today + timedelta(days=30)).isoformat()
        chinese = await env.deliver(press("borrow", "RD-OSC-001", BORROWER, due=too_late))
        english = await env.deliver(press("borrow", "RD-OSC-002", BORROWER, due=too_late))
        latest = (today + timedelta(days=14)).isoformat()
        assert chinese.toast == f"仪器 类最长借用 14 天（最晚 {latest}）"
        assert english.toast == f"instruments items are lent for at most 14 days (until {latest})"
        await env.deliver(press("borrow", "RD-OSC-002", BORROWER))
        taken = await env.deliver(press("borrow", "RD-OSC-002", OTHER))
        assert taken.toast and "is on loan to 李娜" in taken.toast and BORROWER not in taken.toast
        # the borrow card of the English-speaking hospital's asset: in English, its status too
        card = next(m.text for m in env.messages(to=BORROWER) if m.card and "RD-OSC-002" in str(m.card))
        assert "Status**: on loan" in card or "Status: on loan" in card, card
        assert "借出" not in card and "状态" not in card
    settings = AssetLoanSettings.model_validate(LABELLED)
    start = datetime(2026, 3, 2, 9, tzinfo=ZONE)
    loan = Loan(borrower_open_id=BORROWER, borrower_name="李娜", requested_at=start, plan_since=start,
                due=date(2026, 3, 9))
    state = LoanState(asset_id="RD-OSC-001", loaded=True, cycle=0, status="on_loan", loan=loan,
                      asset=AssetInfo(asset_id="RD-OSC-001", name="示波器", category="instrument", location="3F"))
    for locale, label in (("zh_CN", "仪器"), ("en_US", "instruments")):
        page = render_asset(_Org(settings, locale), state, {"open_id": BORROWER, "name": "李娜"}, "/a",
                            "csrf").body.decode()
        assert f"<dd>{label}</dd>" in page and "<dd>instrument</dd>" not in page, page


class _Org:
    """The few parts of an organization the scan page reads."""

    id = "acme"
    zone = ZONE

    def __init__(self, settings: AssetLoanSettings, locale: str) -> None:
        self._settings, self.locale = settings, locale

    def settings(self, scenario: str, site: str | None = None) -> AssetLoanSettings:
        return self._settings


# ----------------------------------------------------------------------------------- 7 business clock

SCALE = 1440  # a business day per real minute


async def test_the_business_clock_drives_the_loan_ladder(scenario_harness: Any) -> None:
    """Behaviour 7: on a compressed business clock the loan is due in business days and its reminder goes
    out at its business moment, minutes of real time later."""
    origin = datetime.now(UTC).replace(microsecond=0)  # wall clock: the business clock's origin, not an expectation
    config = org_config(plugins=["asset_loan"], settings={"asset_loan": SETTINGS},
                        extra={"clock": {"scale": SCALE, "origin": origin.isoformat()}})
    async with scenario_harness({"asset_loan": asset_loan}, config=config) as env:
        env.standin.state.merge_json(SEED)
        await env.deliver(press("borrow", "RD-OSC-001", BORROWER))
        state = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-001"))
        assert state.loan is not None and state.loan.borrowed_at is not None
        borrowed = state.loan.borrowed_at  # business time
        assert state.loan.due == borrowed.astimezone(ZONE).date() + timedelta(days=7)
        plan = reminder_plan(state.loan.due, ReminderSettings(), ZONE, WorkCalendar(ZONE))
        first = next(n for n in plan if n.at is not None and n.at > borrowed)
        assert first.at is not None
        cards = len(env.messages(to=BORROWER))
        await env.advance(minutes=(first.at - borrowed) / timedelta(days=1) + 1)  # a real minute a business day
        state = LoanState.model_validate(await env.query("asset_loan", "RD-OSC-001"))
        sent = [e for e in state.history if e.action == "reminder"]
        assert sent and len(env.messages(to=BORROWER)) > cards
        # at its business moment: a tenth of a real second of latency is 2.4 business minutes
        assert timedelta(0) <= sent[0].at - first.at < timedelta(minutes=30), (sent[0].at, first.at)
