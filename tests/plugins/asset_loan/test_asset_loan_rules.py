"""Pure parts of asset_loan: settings, borrow/extend rules, the reminder plan, signing, templates, routing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

import plugins.asset_loan as plugin
from engine import actions as act
from engine import scan_page as signing
from engine.events import CardAction, MessageReceived
from engine.templates import TemplateEngine
from plugins.asset_loan import rules
from plugins.asset_loan.config import AssetLoanSettings, CategoryRule, ReminderSettings
from plugins.asset_loan.labels import LINK
from plugins.asset_loan.models import AssetInfo, GuardResult, Loan, UserProfile

ZONE = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 2)
ASSET = AssetInfo(asset_id="RD-OSC-001", name="示波器", category="instrument", keeper_open_id="ou_keeper",
                  record_id="rec1")


def settings(**overrides: object) -> AssetLoanSettings:
    data: dict[str, object] = {"categories": {
        "instrument": {"default_loan_days": 7, "max_loan_days": 14, "max_extensions": 1},
        "phantom": {"needs_keeper_approval": True},
        "restricted": {"allowed_departments": ["rd_lab"], "allowed_roles": ["testers"]},
    }, "roles": {"testers": ["ou_tester"]}}
    data.update(overrides)
    return AssetLoanSettings.model_validate(data)


def borrow(asset: AssetInfo | None = ASSET, who: str = "ou_li", due: date | None = None,
           guard: GuardResult | None = None, departments: list[str] | None = None, **kw: object):
    return rules.check_borrow(asset=asset, asset_id="RD-OSC-001",
                              profile=UserProfile(open_id=who, department_ids=departments or []),
                              settings=settings(**kw), requested_due=due, today=TODAY,
                              guard=guard or GuardResult(), locale="zh_CN")


def test_settings_defaults_and_unknown_keys() -> None:
    default = AssetLoanSettings()
    assert default.fields.asset_id == "资产编号" and default.history_table_id == "tblAssetHistory"
    assert [s.after_days for s in default.reminders.escalation] == [1, 3, 7]
    assert default.signing_key_env == "ASSET_LOAN_SIGNING_KEY"
    with pytest.raises(ValidationError):
        AssetLoanSettings.model_validate({"reminder": {}})
    with pytest.raises(ValidationError):
        ReminderSettings.model_validate({"escalation": [{"after_days": 3}, {"after_days": 1}]})
    with pytest.raises(ValidationError):
        AssetLoanSettings.model_validate({"summary_cron": "every monday"})
    # an unlisted category falls back to the default category's rule
    assert settings().category_rule("unknown") == CategoryRule()


def test_signing_secret_from_the_variable_the_organization_names(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    from engine.config import parse_config
    from engine.plugins import load_plugins
    from engine.secrets import derive

    monkeypatch.setenv("MY_KEY", "s3cret")
    document = {"organizations": {"acme": {"plugins": ["asset_loan"],
                                           "settings": {"asset_loan": {"signing_key_env": "MY_KEY"}}}}}
    scenarios = load_plugins(modules={"asset_loan": plugin}, entry_points=False).scenarios
    org = parse_config(document, tmp_path / "engine.toml", scenarios).org("acme")
    assert org.keyring("asset_loan").key("links") == derive(b"s3cret", org="acme", scenario="asset_loan",
                                                            name="signing", purpose="links")


def test_borrow_defaults_due_date_from_category() -> None:
    decision = borrow()
    assert decision.action == "lend" and decision.data["due"] == "2026-03-09"
    assert "7 days" in decision.reason


def test_borrow_refusals_say_why() -> None:
    assert borrow(asset=None).data["code"] == "unknown_asset"
    late = borrow(due=TODAY + timedelta(days=15))
    assert late.action == "refuse" and "14" in late.data["message"]
    assert borrow(due=TODAY - timedelta(days=1)).data["code"] == "due_past"
    guarded = borrow(guard=GuardResult(blocked=True, source="device_calibration", status="quarantined",
                                       reason="calibration overdue"))
    # the person is told the calibration status in their language; the log reason stays in the decision
    assert guarded.action == "refuse" and "超差停用" in guarded.data["message"]
    assert "calibration overdue" not in guarded.data["message"] and "calibration overdue" in guarded.reason


def test_who_may_borrow_by_department_user_or_role() -> None:
    restricted = ASSET.model_copy(update={"category": "restricted"})
    assert borrow(asset=restricted).data["code"] == "not_allowed"
    assert borrow(asset=restricted, departments=["rd_lab"]).action == "lend"
    assert borrow(asset=restricted, who="ou_tester").action == "lend"


def test_keeper_approval_category() -> None:
    phantom = ASSET.model_copy(update={"category": "phantom"})
    assert borrow(asset=phantom).action == "request_approval"
    assert borrow(asset=phantom, who="ou_keeper").action == "lend"  # the keeper needs nobody's approval


def _loan(due: date, extensions: int = 0) -> Loan:
    start = datetime(2026, 3, 2, 10, tzinfo=ZONE)
    return Loan(borrower_open_id="ou_li", requested_at=start, borrowed_at=start, plan_since=start, due=due,
                extensions=extensions)


def test_extend_within_category_limits() -> None:
    rule = settings().category_rule("instrument")
    decision = rules.check_extend(loan=_loan(date(2026, 3, 9)), rule=rule, category="instrument", days=None,
                                  zone=ZONE, locale="en_US")
    assert decision.action == "extend" and decision.data["due"] == "2026-03-16"
    capped = rules.check_extend(loan=_loan(date(2026, 3, 9)), rule=rule, category="instrument", days=30,
                                zone=ZONE, locale="en_US")
    assert capped.data["due"] == "2026-03-16" and "capped" in capped.reason
    refused = rules.check_extend(loan=_loan(date(2026, 3, 9), extensions=1), rule=rule, category="instrument",
                                 days=None, zone=ZONE, locale="en_US")
    assert refused.action == "refuse" and "1 at most" in refused.data["message"]


def test_reminder_plan_and_next_reminder() -> None:
    cadence = ReminderSettings(repeat_every_days=7, max_repeats=2)
    due = date(2026, 3, 9)
    plan = rules.reminder_plan(due, cadence, ZONE)
    assert [(n.data["kind"], n.at.astimezone(ZONE).date().isoformat()) for n in plan] == [
        ("before_due", "2026-03-08"), ("due", "2026-03-09"), ("overdue", "2026-03-10"),
        ("overdue", "2026-03-12"), ("overdue", "2026-03-16"), ("overdue", "2026-03-23"), ("overdue", "2026-03-30")]
    assert plan[4].data["to"] == ["borrower", "keeper", "manager"]
    since = datetime(2026, 3, 2, 10, tzinfo=ZONE)
    waiting = rules.next_reminder(plan, [], since, since)
    assert waiting.action == "wait" and waiting.at == datetime(2026, 3, 8, 9, tzinfo=ZONE)
    # down for days: only the latest missed notice goes out, the earlier ones are recorded as skipped
    late = rules.next_reminder(plan, [], datetime(2026, 3, 11, 12, tzinfo=ZONE), since)
    assert late.action == "escalate" and late.step == "2026-03-09:overdue:1"
    assert late.data["skipped"] == ["2026-03-09:before:1", "2026-03-09:due"]
    # a loan that starts after a notice's moment never gets it
    started_late = datetime(2026, 3, 8, 15, tzinfo=ZONE)
    assert rules.next_reminder(plan, [], started_late, started_late).step == "2026-03-09:due"
    done = [n.step for n in plan]
    assert rules.next_reminder(plan, done, datetime(2026, 4, 30, tzinfo=ZONE), since).is_nothing


def test_recipients_and_roles() -> None:
    loan = _loan(date(2026, 3, 9))
    assert rules.recipients(["borrower", "keeper", "manager"], loan=loan, asset=ASSET, manager="ou_boss") == [
        "ou_li", "ou_keeper", "ou_boss"]
    assert rules.recipients(["manager"], loan=loan, asset=ASSET, manager=None) == []
    assert rules.roles_of("ou_keeper", asset=ASSET, loan=loan, manager=None) == {"keeper"}


def test_signed_links_reject_tampering() -> None:
    key = b"k"
    url = LINK.url("http://127.0.0.1:8080/", key, "acme", "RD-OSC-001")
    assert url.startswith("http://127.0.0.1:8080/asset_loan/scan/acme/RD-OSC-001?sig=")
    sig = url.rsplit("=", 1)[1]
    assert LINK.verify(key, "acme", "RD-OSC-001", sig)
    assert not LINK.verify(key, "acme", "RD-OSC-002", sig)
    assert not LINK.verify(key, "other", "RD-OSC-001", sig)
    assert not LINK.verify(b"other-key", "acme", "RD-OSC-001", sig)
    assert not LINK.verify(key, "acme", "RD-OSC-001", sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    assert not LINK.verify(key, "acme", "RD-OSC-001", None)


def test_links_on_labels_printed_before_the_sdk_had_labels_are_still_made_and_verified() -> None:
    # printed by the plugin's own signing module, before the labels moved into the SDK
    printed = "https://loans.example.org/asset_loan/scan/acme/RD-OSC-001?sig=iYaQr-cHfhP2gb8LXMA8Rg"
    assert LINK.url("https://loans.example.org", b"k" * 32, "acme", "RD-OSC-001") == printed
    assert LINK.verify([b"new" * 11, b"k" * 32], "acme", "RD-OSC-001", "iYaQr-cHfhP2gb8LXMA8Rg")


def test_session_tokens_expire_and_resist_forgery() -> None:
    token = signing.sign_payload(b"k", {"org": "acme", "open_id": "ou_li", "exp": 1000})
    assert signing.read_payload(b"k", token, now=999) == {"org": "acme", "open_id": "ou_li", "exp": 1000}
    assert signing.read_payload(b"k", token, now=1001) is None
    assert signing.read_payload(b"x", token, now=999) is None
    _body, mac = token.split(".")
    forged = signing.sign_payload(b"x", {"org": "acme", "open_id": "ou_boss", "exp": 1000}).split(".")[0]
    assert signing.read_payload(b"k", f"{forged}.{mac}", now=999) is None


def test_every_template_renders_in_both_locales() -> None:
    engine = TemplateEngine({"asset_loan": Path(plugin.__file__).parent / "templates"})
    assert engine.check_all() == []
    names = engine.names()
    assert {"asset_loan:reminder.card", "asset_loan:escalation.card", "asset_loan:summary"} <= set(names)
    for name in names:
        for locale in ("zh_CN", "en_US"):
            assert engine.render_message(name, engine.sample_context(name), locale=locale).content


def test_route_event_maps_cards_and_phrases() -> None:
    from engine.config import parse_config
    from engine.plugins import load_plugins
    from engine.testing.kit import org_config

    plugin_set = load_plugins(modules={"asset_loan": plugin}, entry_points=False)
    config = parse_config(org_config(plugins=["asset_loan"]), Path("t.toml"), plugin_set.scenarios)
    org = config.orgs["acme"]
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    press = CardAction(event_id="e1", event_type="card.action.trigger", create_time=now, operator_open_id="ou_li",
                       action_value={"scenario": "asset_loan", "op": "extend", "asset": "RD-1"})
    start, update = plugin.route_event(event=press, org=org)
    assert isinstance(start, act.StartWorkflow) and start.key == "RD-1"
    assert isinstance(update, act.UpdateWorkflow) and update.update == "extend" and update.update_id == "e1"
    other = press.model_copy(update={"action_value": {"op": "extend", "asset": "RD-1"}})
    assert plugin.route_event(event=other, org=org) is None
    ask = MessageReceived(event_id="e2", event_type="im.message.receive_v1", create_time=now, message_id="om_1",
                          chat_id="oc_1", text=" 我借了什么 ", sender_open_id="ou_li")
    (mine,) = plugin.route_event(event=ask, org=org)
    assert mine.workflow == "asset_loan.MyLoans" and mine.key == "my_loans:om_1" and mine.once  # per message
    card = ask.model_copy(update={"text": "资产 RD-OSC-001", "event_id": "e3"})
    (signal,) = plugin.route_event(event=card, org=org)
    assert isinstance(signal, act.SignalWithStart) and signal.key == "RD-OSC-001" and signal.signal == "send_card"
    chatter = ask.model_copy(update={"text": "hello", "chat_type": "group"})
    assert plugin.route_event(event=chatter, org=org) is None
