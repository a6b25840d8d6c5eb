"""The seven behaviours every plugin has, for project_delivery: one test each (the docstring names it).

A project's site is its region: in these tests the region 华南 is the site ``south`` (Berlin, English).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pd_helpers as h

import plugins.project_delivery as project_delivery
from engine.feishu.standin.events import card_action_event
from engine.feishu.standin.faults import Fault
from engine.sdk import WorkCalendar
from engine.testing.kit import org_config
from plugins.project_delivery import TEMPLATES
from plugins.project_delivery.config import ProjectDeliverySettings
from plugins.project_delivery.models import ProjectState
from plugins.project_delivery.rules import next_timer, plan, project_id_for

PLUGINS = {"project_delivery": project_delivery}
SHANGHAI, BERLIN = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")
SOUTH = {"pm": "ou_pm_south", "se": "ou_se_south", "rm": "ou_rm_south"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _config(**extra: Any) -> dict[str, Any]:
    """The group on calendar days; the south region's site in Berlin, in English, reminded 5 days ahead."""
    return org_config(
        plugins=["project_delivery"], settings={"project_delivery": {"working_days_only": False}},
        sites={"south": {"name": "华南", "timezone": "Europe/Berlin", "locale": "en_US",
                         "settings": {"project_delivery": {"reminder_lead_days": [5]}}}}, extra=extra)


async def _create(env: Any, text: str, event_id: str, **kw: Any) -> ProjectState:
    await env.deliver(h.mention(text, event_id, **kw))
    project = await h.state(env, project_id_for(kw.get("message_id") or f"om_{event_id}"))
    assert project.status == "open", project.reason
    return project


def _texts(env: Any, **filters: Any) -> list[str]:
    return [m.text for m in env.messages(**filters)]


# ------------------------------------------------------------------------------------ 1. per site


async def test_a_regions_site_gets_its_own_settings_zone_and_locale(scenario_harness: Any) -> None:
    """Behaviour 1: overridable settings, zone and locale take effect per site (the project's region)."""
    async with scenario_harness(PLUGINS, config=_config()) as env:
        h.seed(env)
        south = await _create(env, "建群 中山医院 MR1.5T 华南", "ev-south")
        north = await _create(env, "建群 协和医院 CT128 华北", "ev-north")
        assert (south.site, north.site) == ("south", "")
        assert any(t.startswith("Created the project group") for t in h.replies(env))  # the site's language
        assert any(t.startswith("已创建项目群") for t in h.replies(env))  # the group's
        # the south site's dates are Berlin's, its reminders 5 days ahead at 09:00 Berlin time
        assert south.start_date == south.created_at.astimezone(BERLIN).date()
        south_due, north_due = south.planned["site_survey"], north.planned["site_survey"]
        await env.advance_to(datetime.combine(south_due - timedelta(days=5), time(9, 30), tzinfo=BERLIN))
        [first] = [t for t in _texts(env, to=SOUTH["se"]) if "Milestone reminder" in t]
        assert "Site survey" in first and "里程碑" not in first
        south = await h.state(env, south.project_id)
        [notice] = [n for n in south.notices if n["action"] == "remind"]
        assert notice["step"] == "before:5"
        assert datetime.fromisoformat(notice["at"]).astimezone(BERLIN).time().replace(second=0, microsecond=0) \
            == time(9, 0)
        # the group's project: 3 and 1 days ahead and on the day, 09:00 in Shanghai, in Chinese
        await env.advance_to(datetime.combine(max(north_due, south_due), time(18, 0), tzinfo=SHANGHAI))
        north = await h.state(env, north.project_id)
        steps = [n["step"] for n in north.notices if n["action"] == "remind"]
        assert steps == ["before:3", "before:1", "due"]
        assert all(datetime.fromisoformat(n["at"]).astimezone(SHANGHAI).hour == 9
                   for n in north.notices if n["action"] == "remind")
        assert len([t for t in _texts(env, to=h.NORTH["se"]) if "里程碑提醒" in t]) == 3
        assert len([t for t in _texts(env, to=SOUTH["se"]) if "Milestone reminder" in t]) == 2  # before:5, due
        # the portfolio digest reaches each region's managers in their site's language
        await env.advance(days=2)  # both site surveys are late by now
        await env.start_workflow("project_delivery.PortfolioDigest", {"org": "acme"},
                                 id=env.workflow_id("project_delivery", "schedule:portfolio_digest:t1"))
        [english] = [t for t in _texts(env, to=SOUTH["rm"]) if t.startswith("📋")]
        assert "- Contract signed: 1" in english and "Site survey planned" in english and "合同" not in english
        [chinese] = [t for t in _texts(env, to=h.NORTH["rm"]) if t.startswith("📋")]
        assert "- 合同签订：1" in chinese and "现场勘察 计划" in chinese


# ---------------------------------------------------------------------------------- 2. working days


def _ladder(state: ProjectState, now: datetime, settings: ProjectDeliverySettings, calendar: WorkCalendar,
            count: int) -> list[tuple[str, str, date]]:
    """The first ``count`` notices the project's timers send (digests left out): action, step and day."""
    state = state.model_copy(deep=True)
    sent: list[tuple[str, str, date]] = []
    while len(sent) < count:
        decision = next_timer(state, now, settings, calendar)
        assert decision.at is not None, decision.reason
        now = decision.at
        if decision.action == "digest":
            state.last_digest_at = now
            continue
        sent.append((decision.action, str(decision.step), calendar.local(now).date()))
        (state.warranty_fired if decision.action == "warranty" else state.fired).append(str(decision.step))
    return sent


def test_every_ladder_runs_on_the_organizations_working_days() -> None:
    """Behaviour 2: milestone reminders, the slip ladder and warranty reminders run on working days (the
    China calendar plus the organization's own days off)."""
    settings = ProjectDeliverySettings()
    start = date(2026, 8, 21)
    state = ProjectState(project_id="PD-1", status="open", stage="shipped", start_date=start,
                         created_at=datetime(2026, 8, 21, 2, tzinfo=UTC), planned=plan(start, settings))
    due = date(2026, 10, 4)  # installation planned for a Sunday in the National Day holiday
    state.planned["installed"] = due
    before = datetime(2026, 9, 20, 2, tzinfo=UTC)
    calendar = WorkCalendar(SHANGHAI)
    notices = _ladder(state, before, settings, calendar, 6)
    # the reminders 3 and 1 days ahead and on the day all fall on days off: one, on the last working day before
    assert notices[0] == ("remind", "due", calendar.previous_workday(due))
    escalations = notices[1:]
    assert [action for action, _, _ in escalations] == ["escalate"] * 5
    assert escalations[0][2] == calendar.next_workday(due) > date(2026, 10, 7)  # after the holiday
    assert all(calendar.is_workday(day) for _, _, day in notices)
    # on calendar days the same ladder reminds 3 and 1 days ahead and on the due Sunday
    calendar_days = settings.model_copy(update={"working_days_only": False})
    assert [(s, d) for _, s, d in _ladder(state, before, calendar_days, calendar, 3)] == [
        ("before:3", due - timedelta(days=3)), ("before:1", due - timedelta(days=1)), ("due", due)]
    # the organization's own day off moves the reminder to the working day before it
    own = WorkCalendar(SHANGHAI, holidays=[notices[0][2]])
    assert _ladder(state, before, settings, own, 1)[0][2] == own.previous_workday(notices[0][2]) < notices[0][2]
    # warranty reminders 60, 30 and 7 days before a warranty that ends on National Day
    warranty = state.model_copy(update={"stage": "warranty", "warranty_end": date(2026, 10, 3)})
    reminders = _ladder(warranty, datetime(2026, 7, 1, 2, tzinfo=UTC), settings, calendar, 3)
    assert [(a, s) for a, s, _ in reminders] == [("warranty", "before:60"), ("warranty", "before:30"),
                                                 ("warranty", "before:7")]
    assert all(calendar.is_workday(day) and day < date(2026, 10, 1) for _, _, day in reminders)
    assert [d for _, _, d in _ladder(warranty, datetime(2026, 7, 1, 2, tzinfo=UTC), calendar_days, calendar, 3)][-1] \
        == date(2026, 9, 26)  # on calendar days: a Saturday


# ------------------------------------------------------------------------------- 3. press at once


async def test_a_stage_press_is_answered_at_once_while_feishu_is_slow(scenario_harness: Any) -> None:
    """Behaviour 3: a card press is answered at once (its own toast) while the Open API is slow, and what
    it decided happens exactly once afterwards."""
    async with scenario_harness(PLUGINS, org_settings={"project_delivery": {"working_days_only": False}}) as env:
        h.seed(env)
        project = await _create(env, "建群 协和医院 CT128 华北", "ev-1")
        # a submitted creation form: answered with our toast while the group's calls are slow
        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=3))
        gaps = card_action_event({"scenario": "project_delivery", "op": "create"}, h.NORTH["sales"], "om_formcard",
                                 "oc_sales", form_value={"customer": "天坛医院", "product": "", "region": ""})
        answer = await env.push("card.action.trigger", gaps, event_id="ev-gaps")
        assert answer.status == 200 and answer.response_json["toast"]["content"] == "缺少：产品名称、区域"
        assert len(h.created_chats(env)) == 1 and not [m for m in env.messages() if m.reply_to == "om_formcard"]
        fields = {"customer": "天坛医院", "product": "MR 1.5T", "region": "华北"}
        form = card_action_event({"scenario": "project_delivery", "op": "create"}, h.NORTH["sales"], "om_formcard",
                                 "oc_sales", form_value=fields)
        answer = await env.push("card.action.trigger", form, event_id="ev-form")
        assert answer.status == 200 and answer.response_json["toast"]["content"].startswith("正在创建项目群")
        env.standin.clear_faults()
        await env.settle()
        assert (await h.state(env, project_id_for("card:ev-form"))).status == "open"
        assert len(h.created_chats(env)) == 2
        assert len([m for m in env.messages() if m.reply_to == "om_formcard" and "已创建项目群" in m.text]) == 1
        # a stage press while every Open API call takes 4 s
        env.standin.inject(Fault(kind="slow", delay=4, path_prefix="/open-apis/", times=50))
        value = {"scenario": "project_delivery", "op": "stage", "project": project.project_id, "stage": "site_survey"}
        event = card_action_event(value, h.NORTH["se"], project.card_message_id, project.chat_id)
        answer = await env.push("card.action.trigger", event)
        assert answer.status == 200
        assert answer.response_json["toast"]["content"] == "已更新为：现场勘察"  # ours, not a busy/timeout answer
        env.standin.clear_faults()
        await env.settle()
        moved = await h.state(env, project.project_id)
        assert moved.stage == "site_survey" and [e.stage for e in moved.history] == ["contract_signed", "site_survey"]
        announcements = [t for t in _texts(env, chat_id=project.chat_id) if "合同签订 → 现场勘察" in t]
        assert len(announcements) == 1
        [row] = [r for r in h.projects(env) if r["项目编号"] == project.project_id]
        assert row["阶段"] == "现场勘察" and row["阶段记录"].count("现场勘察") == 1


# ---------------------------------------------------------------------------------------- 4. status


async def test_status_is_answered_in_the_askers_language(scenario_harness: Any) -> None:
    """Behaviour 4: "@bot <project id> 状态" / "status" answers stage, next milestone and slips in the
    asker's locale."""
    async with scenario_harness(PLUGINS, org_settings={"project_delivery": {"working_days_only": False}}) as env:
        h.seed(env)
        project = await _create(env, "建群 协和医院 CT128 华北", "ev-1")
        await env.advance_to(datetime.combine(project.planned["site_survey"] + timedelta(days=2), time(12),
                                              tzinfo=SHANGHAI))
        await env.deliver(h.mention(f"{project.project_id} 状态", "ev-zh"))
        await env.deliver(h.mention(f"{project.project_id.lower()} status", "ev-en"))
        await env.deliver(h.mention("PD-0000000000 status", "ev-none"))
        [zh] = [m.text for m in env.messages() if m.reply_to == "om_ev-zh"]
        assert "合同签订" in zh and "下一里程碑：现场勘察" in zh and "现场勘察 已延期 2 天" in zh
        [en] = [m.text for m in env.messages() if m.reply_to == "om_ev-en"]
        assert ": Contract signed" in en and "Next milestone: Site survey" in en
        assert "Site survey late by 2 days" in en and not CJK.search(en.replace(project.name, ""))
        [missing] = [m.text for m in env.messages() if m.reply_to == "om_ev-none"]
        assert missing.startswith("No delivery project PD-0000000000")


# ------------------------------------------------------------------------------------ 5. redelivery


async def test_a_request_pushed_again_under_a_new_event_id_makes_one_project(scenario_harness: Any) -> None:
    """Behaviour 5: a message redelivered under a new event id (same message_id) is handled once, even
    after its project has finished."""
    async with scenario_harness(PLUGINS, org_settings={"project_delivery": {"working_days_only": False}}) as env:
        h.seed(env)
        project = await _create(env, "建群 协和医院 CT128 华北", "ev-1", message_id="om_request")
        await env.deliver(h.mention("建群 协和医院 CT128 华北", "ev-2", message_id="om_request"))
        run = (await env.handle("project_delivery", project.project_id).describe()).run_id
        await env.deliver(h.press({"op": "cancel", "project": project.project_id}, "ev-c", h.NORTH["pm"]))
        await env.advance(seconds=1)
        finished = await env.handle("project_delivery", project.project_id).describe()
        await env.deliver(h.mention("建群 协和医院 CT128 华北", "ev-3", message_id="om_request"))
        again = await env.handle("project_delivery", project.project_id).describe()
        assert (again.run_id, again.status) == (finished.run_id, finished.status)  # not started again
        assert again.run_id == run  # the first delivery's run, which the second one joined
        assert len(h.created_chats(env)) == 1
        assert len([t for t in h.replies(env) if t.startswith("已创建项目群")]) == 1
        assert (await h.state(env, project.project_id)).status == "cancelled"


# --------------------------------------------------------------------------- 6. nothing internal shown


async def test_users_see_their_own_language_and_no_internal_reason(scenario_harness: Any) -> None:
    """Behaviour 6: toasts, templates and messages in the person's language, no internal reason or code."""
    for path in sorted((TEMPLATES / "en_US").glob("*.j2")):
        assert not CJK.search(path.read_text(encoding="utf-8")), path.name  # no Chinese of their own
    async with scenario_harness(PLUGINS, config=_config()) as env:
        h.seed(env)
        south = await _create(env, "create project Ruijin DR 华南", "ev-south")
        north = await _create(env, "建群 协和医院 CT128 华北", "ev-north")
        bad = await env.deliver(h.press({"op": "stage", "project": south.project_id, "stage": "nope"}, "ev-b1",
                                        SOUTH["pm"]))
        assert bad.toast == "No such stage"
        bad = await env.deliver(h.press({"op": "stage", "project": north.project_id, "stage": "nope"}, "ev-b2",
                                        h.NORTH["pm"]))
        assert bad.toast == "没有这个阶段"
        moved = await env.deliver(h.press({"op": "stage", "project": south.project_id, "stage": "site_survey"},
                                          "ev-s", SOUTH["se"]))
        assert moved.toast == "Moved to: Site survey"
        again = await env.deliver(h.press({"op": "stage", "project": south.project_id, "stage": "site_survey"},
                                          "ev-s2", SOUTH["se"]))
        assert again.toast == "The project is already at this stage"
        await env.advance(days=45)  # reminders and slips of both projects (the south reminder: day 40, 09:00 Berlin)
        [announcement] = [t for t in _texts(env, chat_id=south.chat_id) if t.startswith("📌")]
        assert "via the project card" in announcement and not CJK.search(announcement)
        for project in (south, north):
            state = await h.state(env, project.project_id)
            reasons = [n["reason"] for n in state.notices] + [e.note for e in state.history if e.note]
            assert reasons  # the rules' reasons are kept in the state and the log...
            for text in _texts(env):
                assert not any(reason in text for reason in reasons)  # ...and never sent
        english = [m.text for m in env.messages() if m.to in SOUTH.values()]
        assert english and all(not CJK.search(t.replace(south.name, "")) for t in english)


# ----------------------------------------------------------------------------------- 7. business clock


async def test_a_compressed_business_clock_drives_the_milestone_ladder(scenario_harness: Any) -> None:
    """Behaviour 7: the business clock (site context's ``clock``) drives the project's timers."""
    scale = 1440  # a business day per real minute
    origin = datetime.now(UTC).replace(microsecond=0)  # wall clock: the business clock's origin, not an expectation
    config = org_config(plugins=["project_delivery"], settings={"project_delivery": {"working_days_only": False}},
                        extra={"clock": {"scale": scale, "origin": origin.isoformat()}})
    async with scenario_harness(PLUGINS, config=config) as env:
        h.seed(env)
        project = await _create(env, "建群 协和医院 CT128 华北", "ev-1")
        await env.advance(minutes=15)  # 15 business days: the site survey's reminders came due
        state = await h.state(env, project.project_id)
        reminders = [n for n in state.notices if n["action"] == "remind"]
        assert [n["step"] for n in reminders] == ["before:3", "before:1", "due"]
        due = state.planned["site_survey"]
        for notice, days in zip(reminders, (3, 1, 0), strict=True):
            at = datetime.fromisoformat(notice["at"]).astimezone(SHANGHAI)
            assert at.date() == due - timedelta(days=days)
            # at business 09:00; a tenth of a real second of timer and task latency is 2.4 business minutes
            assert timedelta(0) <= at - at.replace(hour=9, minute=0, second=0, microsecond=0) < timedelta(minutes=30)
        assert len([t for t in _texts(env, to=h.NORTH["se"]) if "里程碑提醒" in t]) == 3
