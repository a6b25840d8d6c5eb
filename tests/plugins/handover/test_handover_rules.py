"""Pure parts of the handover plugin: settings, rota, entries, deadlines, statistics, routing, schedules."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from handover_helpers import DAY, HOLIDAY, NIGHT, card, handover_settings
from pydantic import ValidationError

import plugins.handover as handover
from engine.config import parse_config
from engine.events import CardAction, MessageReceived
from engine.plugins import load_plugins
from engine.rules.workdays import WorkCalendar
from engine.templates import TemplateEngine
from engine.testing.kit import org_config
from plugins.handover import models as m
from plugins.handover import rules
from plugins.handover.config import Department, HandoverSettings, RotaEntry

ZONE = ZoneInfo("Asia/Shanghai")
CHINA = WorkCalendar(ZONE)
EXAMPLE_ROTA = Path(__file__).resolve().parents[3] / "examples" / "handover" / "rota.json"


def settings(**overrides) -> HandoverSettings:
    return HandoverSettings.model_validate(handover_settings(**overrides))


def plan_at(change_local: datetime, **overrides) -> m.ShiftPlan:
    s = settings(**overrides)
    rota = rules.resolve_rota(change_local.date(), change_local.strftime("%H:%M"), s.departments["icu"], CHINA)
    return rules.build_plan("acme", "icu", s, change_local, rota, "Asia/Shanghai")


CHANGE = datetime(2026, 11, 23, 20, 0, tzinfo=ZONE)  # a Monday


# ------------------------------------------------------------------------------------------- settings


def test_settings_defaults_and_validation():
    s = HandoverSettings()
    assert s.shift_changes == ["08:00", "20:00"] and s.lead_minutes == 45 and s.structure == "ipass"
    assert s.required() == ["summary", "actions", "contingency"]
    assert {c.id for c in s.categories if c.critical} == {"critically_ill", "critical_value"}
    assert HandoverSettings(shift_changes=["8:00", "20:00", "08:00"]).shift_changes == ["08:00", "20:00"]
    assert HandoverSettings(structure="sbar").required() == ["situation", "background", "assessment",
                                                             "recommendation"]
    with pytest.raises(ValidationError, match="HH:MM"):
        HandoverSettings(shift_changes=["25:00"])
    with pytest.raises(ValidationError, match="contain no ':'"):
        HandoverSettings(departments={"a:b": {"head": "ou_x"}})
    with pytest.raises(ValidationError, match="not fields of the sbar"):
        HandoverSettings(structure="sbar", required_fields=["summary"])
    with pytest.raises(ValidationError):
        HandoverSettings(lead_minute=30)  # a typo is an error, not a silent default


def test_stats_cron_is_checked_with_the_config():
    """Regression (issue 9): a mistyped cron passed `engine config check` and failed only at schedule sync."""
    assert HandoverSettings(stats_cron="").stats_cron == ""  # switched off
    assert HandoverSettings(stats_cron="0  9 1 * *").stats_cron == "0 9 1 * *"
    with pytest.raises(ValidationError, match="cron"):
        HandoverSettings(stats_cron="monthly at nine")


def test_site_override_through_the_engine_config():
    plugins = load_plugins(modules={"handover": handover}, entry_points=False)
    document = org_config(plugins=["handover"], settings={"handover": handover_settings()},
                          sites={"east": {"settings": {"handover": {"lead_minutes": 30, "structure": "sbar"}}}})
    config = parse_config(document, Path("engine.toml"), plugins.scenarios)
    org = config.org("acme")
    assert org.settings("handover").lead_minutes == 45
    east = org.settings("handover", "east")
    assert east.lead_minutes == 30 and east.structure == "sbar" and "icu" in east.departments


# ----------------------------------------------------------------------------------------------- rota


def test_rota_workday_holiday_and_make_up_day():
    icu = settings().departments["icu"]
    monday = rules.resolve_rota(date(2026, 11, 23), "20:00", icu, CHINA)
    assert monday.data == {"giver": DAY, "receiver": NIGHT, "source": "workday_rota", "holiday": False}
    national_day = rules.resolve_rota(date(2026, 10, 1), "20:00", icu, CHINA)
    assert national_day.data["giver"] == HOLIDAY and national_day.data["holiday"]
    assert "day off" in national_day.reason
    # Saturday 2026-10-10 is a make-up workday (调休): the workday rota applies
    make_up = rules.resolve_rota(date(2026, 10, 10), "08:00", icu, CHINA)
    assert make_up.data["receiver"] == DAY and not make_up.data["holiday"]
    assert rules.resolve_rota(date(2026, 10, 17), "08:00", icu, CHINA).data["receiver"] == HOLIDAY
    # the organization's own extra day off
    own = WorkCalendar(ZONE, holidays=[date(2026, 11, 24)])
    assert rules.resolve_rota(date(2026, 11, 24), "08:00", icu, own).data["holiday"]


def test_rota_dated_lines_win_and_missing_rota_is_explained():
    icu = Department(head="ou_h", workday_rota={"08:00": {"giver": "ou_a", "receiver": "ou_b"}},
                     rota=[RotaEntry(date=date(2026, 11, 23), shift="8:00", giver="ou_x", receiver="ou_y")])
    assert rules.resolve_rota(date(2026, 11, 23), "08:00", icu, CHINA).data["giver"] == "ou_x"
    millis = int(datetime(2026, 11, 24, tzinfo=ZONE).timestamp() * 1000)  # Bitable date fields
    table = rules.rota_lines([{"日期": millis, "交班时间": "08:00", "交班医生": [{"id": "ou_t"}],
                               "接班医生": "ou_u", "科室": "icu"},
                              {"date": "2026-11-24", "shift": "08:00", "giver": "ou_o", "receiver": "ou_p",
                               "department": "cardiology"}], "icu", ZONE)
    assert [(t.date, t.giver, t.receiver) for t in table] == [(date(2026, 11, 24), "ou_t", "ou_u")]
    assert rules.resolve_rota(date(2026, 11, 24), "08:00", icu, CHINA, table).data["source"] == "table"
    # a holiday without a holiday slot falls back to the workday pair; no slot at all is explained
    assert rules.resolve_rota(date(2026, 10, 1), "08:00", icu, CHINA).data["giver"] == "ou_a"
    nothing = rules.resolve_rota(date(2026, 11, 23), "20:00", icu, CHINA)
    assert nothing.is_nothing and "no workday_rota slot" in nothing.reason


def test_example_rota_file_parses():
    lines = rules.rota_lines(__import__("json").loads(EXAMPLE_ROTA.read_text(encoding="utf-8"))["entries"],
                             "icu", ZONE)
    assert len(lines) >= 14 and {line.shift for line in lines} == {"08:00", "20:00"}
    assert date(2026, 11, 23) in {line.date for line in lines}
    assert len({line.giver for line in lines} | {line.receiver for line in lines}) >= 2


def test_next_change_and_plan():
    assert rules.next_change(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), ["08:00", "20:00"], ZONE) == CHANGE
    assert rules.next_change(datetime(2026, 11, 23, 12, 1, tzinfo=UTC), ["08:00", "20:00"], ZONE) == \
        datetime(2026, 11, 24, 8, 0, tzinfo=ZONE)
    plan = plan_at(CHANGE)
    assert plan.key == "icu:2026-11-23T20:00" and plan.change_at == CHANGE
    assert plan.form_at == CHANGE - timedelta(minutes=45) and plan.close_at == CHANGE + timedelta(hours=12)
    assert plan.fields == ["summary", "actions", "contingency"] and not plan.holiday


# -------------------------------------------------------------------------------------------- entries


def test_entries_fill_in_over_sittings_and_completeness():
    plan = plan_at(CHANGE)
    now = CHANGE - timedelta(minutes=40)
    first, why = rules.apply_form({}, {"bed": " 12 ", "category": "post_op", "summary": "术后第1天"}, plan, now)
    assert why == "" and first is not None and first.bed == "12" and not first.critical
    assert rules.missing_fields(first, plan) == ["severity", "actions", "contingency"]
    second, _ = rules.apply_form({"12": first}, {"bed": "12", "severity": "unstable", "actions": "复查",
                                                 "contingency": "呼叫二线", "summary": "",
                                                 "imaging": "CT https://pacs/1 and https://pacs/2"}, plan, now)
    assert second is not None and second.fields["summary"] == "术后第1天"  # an empty field keeps the old text
    assert second.critical and second.imaging == ["https://pacs/1", "https://pacs/2"]
    assert rules.handover_complete([second], plan) and not rules.handover_complete([first, second], plan)
    assert rules.apply_form({}, {"summary": "x"}, plan, now) == (None, "bed is required")
    assert rules.apply_form({}, {"bed": "1", "category": "vip"}, plan, now)[1] == "unknown category 'vip'"
    assert rules.apply_form({}, {"bed": "1", "severity": "bad"}, plan, now)[1] == "unknown severity 'bad'"
    critical_category, _ = rules.apply_form({}, {"bed": "3", "category": "critically_ill"}, plan, now)
    assert critical_category is not None and critical_category.critical


# ------------------------------------------------------------------------------------------ deadlines


def steps(plan, now, fired=(), submitted=None, acknowledged=False, critical=0):
    due, next_at = rules.notices(plan, now=now, fired=set(fired), submitted_at=submitted,
                                 acknowledged=acknowledged, unacked_critical=critical)
    return [d.step for d in due], next_at


def test_notices_form_missing_and_close():
    plan = plan_at(CHANGE)
    assert steps(plan, CHANGE - timedelta(hours=2)) == ([], plan.form_at)
    assert steps(plan, plan.form_at) == (["form"], CHANGE)
    assert steps(plan, CHANGE, ["form"]) == (["missing-remind-1"], CHANGE + timedelta(minutes=30))
    due, _ = rules.notices(plan, now=CHANGE + timedelta(minutes=30), fired={"form", "missing-remind-1"},
                           submitted_at=None, acknowledged=False, unacked_critical=0)
    assert [(d.action, d.data["to"]) for d in due] == [("escalate", "head")]
    assert "no handover written" in due[0].reason and "step 1 of 2" in due[0].reason
    assert steps(plan, plan.close_at, ["form", "missing-remind-1", "missing-1", "missing-2"]) == (["close"], None)


def test_notices_critical_escalates_sooner_than_the_handover():
    plan = plan_at(CHANGE)
    submitted = CHANGE - timedelta(minutes=20)  # early: the clock starts at the change
    base = dict(fired=["form"], submitted=submitted)
    assert steps(plan, CHANGE, **base, critical=1) == ([], CHANGE + timedelta(minutes=15))
    assert steps(plan, CHANGE + timedelta(minutes=15), **base, critical=1)[0] == ["critical-1"]
    assert steps(plan, CHANGE + timedelta(minutes=15), **base, critical=0) == ([], CHANGE + timedelta(minutes=60))
    assert steps(plan, CHANGE + timedelta(minutes=60), fired=["form", "critical-1"], submitted=submitted,
                 critical=1)[0] == ["ack-1", "ack-2"]
    late = CHANGE + timedelta(minutes=40)  # submitted late: the clock starts at the submission
    assert steps(plan, late + timedelta(minutes=59), fired=["form"], submitted=late)[0] == []
    assert steps(plan, plan.close_at, fired=["form", "ack-1", "ack-2", "ack-3"], submitted=late,
                 acknowledged=True) == (["close"], None)


# ----------------------------------------------------------------------------------------- statistics


def record(shift, status, *, site="", department="icu", submitted=True, on_time=True, complete=True,
           minutes=None, escalations=0):
    fields = {m.H_KEY: f"{department}:{shift}", m.H_SHIFT: shift, m.H_SITE: site, m.H_DEPARTMENT: department,
              m.H_STATUS: status, m.H_ON_TIME: on_time, m.H_COMPLETE: complete, m.H_ESCALATIONS: escalations}
    if submitted:
        fields[m.H_SUBMITTED] = 1
    if minutes is not None:
        fields[m.H_ACK_MINUTES] = minutes
    return fields


def test_monthly_stats_per_department_site_and_organization():
    records = [
        record("2026-11-01T08:00", "acknowledged", minutes=5),
        record("2026-11-01T20:00", "acknowledged", minutes=30, on_time=False, escalations=2),
        record("2026-11-02T08:00", "missing", submitted=False, on_time=False, complete=False, escalations=2),
        record("2026-11-02T08:00", "unacknowledged", department="er", site="east", complete=False, escalations=1),
        record("2026-11-03T08:00", "acknowledged", department="er", site="east", minutes=12),
        record("2026-10-31T20:00", "acknowledged", minutes=1),  # another month
    ]
    rows = {(r.site, r.department): r for r in rules.monthly_stats(records, "2026-11")}
    icu = rows[("", "icu")]
    assert (icu.shifts, icu.written, icu.on_time, icu.complete, icu.acknowledged, icu.missing) == (3, 2, 1, 2, 2, 1)
    assert icu.median_ack_minutes == 17.5 and icu.escalations == 4
    east = rows[("east", "*")]
    assert (east.shifts, east.acknowledged, east.median_ack_minutes, east.escalations) == (2, 1, 12.0, 1)
    org = rows[("*", "*")]
    assert (org.shifts, org.written, org.acknowledged, org.median_ack_minutes) == (5, 4, 3, 12.0)
    assert list(rows)[-1] == ("*", "*")  # the organization's row comes last
    csv_text = rules.stats_csv(rows.values())
    assert csv_text.splitlines()[0] == ",".join(rules.CSV_COLUMNS)
    assert "2026-11,east,er,2,2,2,1,1,12.0,1,0" in csv_text
    hostile = rows[("", "icu")].model_copy(update={"department": '=HYPERLINK("https://evil.example","icu")',
                                                     "site": "@east"})
    [_header, line] = list(csv.reader(io.StringIO(rules.stats_csv([hostile]))))
    assert line[:3] == ["2026-11", "'@east", "'=HYPERLINK(\"https://evil.example\",\"icu\")"]
    assert rules.previous_month(datetime(2026, 12, 1, 1, 0, tzinfo=UTC), ZONE) == "2026-11"


# ------------------------------------------------------------------------------ hooks and templates


def test_route_card_presses_to_updates_and_ignore_the_rest():
    org = parse_config(org_config(plugins=["handover"], settings={"handover": handover_settings()}),
                       Path("engine.toml"), load_plugins(modules={"handover": handover},
                                                         entry_points=False).scenarios).org("acme")
    [action] = handover.route_event(event=card(DAY, "handover.ack_patient", "icu:2026-11-23T20:00", {"x": 1},
                                               event_id="ev-9", bed="12"), org=org)
    assert (action.scenario, action.key, action.update, action.update_id) == \
        ("handover", "icu:2026-11-23T20:00", "ack_patient", "ev-9")
    assert action.arg.operator == DAY and action.arg.value["bed"] == "12" and action.arg.form == {"x": 1}
    other = CardAction(event_id="e", event_type="card.action.trigger", create_time=datetime.now(UTC),
                       action_value={"op": "asset_loan.return", "key": "k"})
    text = MessageReceived(event_id="e2", event_type="im.message.receive_v1", create_time=datetime.now(UTC),
                           message_id="om_1", chat_id="oc_1", text="交班")
    assert handover.route_event(event=other, org=org) is None and handover.route_event(event=text, org=org) is None


def test_schedules_fire_at_the_form_time_and_monthly():
    plugins = load_plugins(modules={"handover": handover}, entry_points=False)
    doc = org_config(plugins=["handover"], settings={"handover": handover_settings(lead_minutes=30)},
                     sites={"east": {"settings": {"handover": {"departments": {"er": {
                         "head": "ou_h2", "site": "east", "shift_changes": ["00:00"]}}}}}})
    org = parse_config(doc, Path("engine.toml"), plugins.scenarios).org("acme")
    specs = {s.id: s for s in handover.schedules(org=org)}
    assert specs["rota-icu-0800"].cron == "30 7 * * *" and specs["rota-icu-2000"].cron == "30 19 * * *"
    assert specs["rota-er-0000"].cron == "30 23 * * *" and specs["rota-er-0000"].args[0]["site"] == "east"
    assert specs["monthly-stats"].workflow == "handover.MonthlyStats"


def test_every_template_renders_in_both_locales():
    engine = TemplateEngine({"handover": Path(handover.__file__).parent / "templates"})
    assert engine.check_all() == []
    names = engine.names()
    assert len(names) == 13 and "handover:receive.card" in names
    assert {"handover:status", "handover:status_missing"} <= set(names)


def test_group_templates_cannot_show_patient_content():
    """The group message's context holds counts only; even the sample of a detail card shows beds."""
    engine = TemplateEngine({"handover": Path(handover.__file__).parent / "templates"})
    detail = engine.sample_context("handover:receive.card")
    for locale in ("zh_CN", "en_US"):
        for event in ("submitted", "acknowledged", "missing"):
            text = engine.render("handover:group_status", {**detail, "event": event}, locale=locale)
            assert "12" not in text.replace("2026", "") and "张三" not in text and "重症肺炎" not in text
        card_text = engine.render("handover:receive.card", detail, locale=locale)
        assert "张三" in card_text  # the receiver's card does carry the details
