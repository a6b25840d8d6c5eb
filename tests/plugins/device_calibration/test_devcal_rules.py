"""Pure rules of device_calibration: due dates, the ladder on China's working days, status at the due date,
away and assessment reminders, results, forms, cells, settings. No Temporal here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from engine.sdk import Decision
from plugins.device_calibration import rules
from plugins.device_calibration.config import DeviceCalibrationSettings, ScheduleKind
from plugins.device_calibration.models import (
    Assessment,
    CalendarFacts,
    CalibrationResult,
    CycleState,
    DeviceInfo,
    KindFacts,
    SentOut,
    cell_date,
    cell_person,
    cycle_key,
    date_cell,
    split_cycle_key,
)

ZONE = ZoneInfo("Asia/Shanghai")
CAL = rules.build_calendar(CalendarFacts())
SETTINGS = DeviceCalibrationSettings(default_managers=["ou_m"])
KIND = SETTINGS.schedules["calibration"]


def _state(due: date, **extra: object) -> CycleState:
    return CycleState(org="acme", device_id="CT-0012", kind="calibration", due=due,
                      info=DeviceInfo(device_id="CT-0012"), **extra)  # type: ignore[arg-type]


def _run(state: CycleState, start: datetime, end: datetime,
         settings: DeviceCalibrationSettings = SETTINGS) -> list[tuple[str, datetime, str]]:
    """Drive next_action as the workflow does: sleep until each decision, act, record it."""
    now, done = start, []
    while True:
        decision = rules.next_action(state, now, settings, CAL)
        if decision.is_nothing or decision.at is None or decision.at > end:
            return done
        now = max(now, decision.at)
        assert decision.step is not None
        state.fired.append(decision.step)
        if decision.action == "status" and state.phase == "active":
            state.phase = "overdue"
        done.append((decision.step, now.astimezone(ZONE), decision.reason))


def test_schedule_crons_are_checked_with_the_config() -> None:
    """Regression (issue 9): a mistyped cron passed `engine config check` and failed only at schedule sync."""
    assert DeviceCalibrationSettings(reconcile_cron="30 6 * * *", digest_cron="@weekly").digest_cron == "@weekly"
    for key in ("reconcile_cron", "digest_cron"):
        with pytest.raises(ValidationError, match="cron"):
            DeviceCalibrationSettings.model_validate({key: "every morning"})


def test_reminders_around_national_day_2026() -> None:
    due = date(2026, 10, 12)
    fired = _run(_state(due), datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 10, 20, tzinfo=UTC))
    when = {step: moment for step, moment, _ in fired}
    # 30 days before is Saturday 09-12: the Friday before, at 09:00
    assert when["before:30"] == datetime(2026, 9, 11, 9, tzinfo=ZONE)
    # 7 days before is 10-05, in the National Day holiday: the last workday before it
    assert when["before:7"] == datetime(2026, 9, 30, 9, tzinfo=ZONE)
    # 1 day before is Sunday 10-11: Saturday 10-10 is a make-up workday (调休)
    assert when["before:1"] == datetime(2026, 10, 10, 9, tzinfo=ZONE)
    # the status turns at local midnight of the due day, the due notice at 09:00
    assert when["status:overdue"] == datetime(2026, 10, 12, 0, tzinfo=ZONE)
    assert when["due"] == datetime(2026, 10, 12, 9, tzinfo=ZONE)
    assert when["after:manager:1"] == datetime(2026, 10, 13, 9, tzinfo=ZONE)
    assert when["after:department_head:1"] == datetime(2026, 10, 19, 9, tzinfo=ZONE)
    for step, moment, _ in fired:
        if not step.startswith("status"):
            assert CAL.is_workday(moment.date()), step
    assert "moved from 2026-10-05" in next(reason for step, _, reason in fired if step == "before:7")


def test_grace_period_is_limited_use_then_out_of_service() -> None:
    settings = SETTINGS.model_copy(update={"grace_days": 5})
    fired = _run(_state(date(2026, 10, 12)), datetime(2026, 10, 11, tzinfo=UTC), datetime(2026, 10, 20, tzinfo=UTC),
                 settings)
    when = {step: moment for step, moment, _ in fired}
    assert when["status:grace"] == datetime(2026, 10, 12, 0, tzinfo=ZONE)
    assert when["status:overdue"] == datetime(2026, 10, 17, 0, tzinfo=ZONE)
    assert rules.bitable_labels("overdue", "grace", settings) == ("准用", "超期(宽限期)")
    assert rules.bitable_labels("overdue", "overdue", settings) == ("停用", "超期")


def test_sent_out_stops_the_ladder_and_reminds_when_away_too_long() -> None:
    state = _state(date(2026, 12, 31), phase="sent_out", fired=["before:30"],
                   sent_out=SentOut(vendor="省计量院", sent_on=date(2026, 12, 1), by="ou_c",
                                    at=datetime(2026, 12, 1, tzinfo=UTC)))
    fired = _run(state, datetime(2026, 12, 1, 2, tzinfo=UTC), datetime(2026, 12, 24, tzinfo=UTC))
    assert [step for step, _, _ in fired] == ["away:1", "away:2"]
    assert fired[0][1] == datetime(2026, 12, 15, 9, tzinfo=ZONE)
    assert fired[1][1] == datetime(2026, 12, 22, 9, tzinfo=ZONE)


def test_open_assessment_reminds_the_manager_until_closed() -> None:
    result = CalibrationResult(performed_on=date(2026, 12, 1), performed_by="x", certificate="c", as_found="fail",
                               as_left="fail", recorded_by="ou_m", recorded_at=datetime(2026, 12, 1, 2, tzinfo=UTC))
    state = _state(date(2026, 12, 31), phase="quarantined",
                   assessment=Assessment(opened_at=datetime(2026, 12, 1, 2, tzinfo=UTC), result=result))
    decision = rules.next_action(state, datetime(2026, 12, 1, 3, tzinfo=UTC), SETTINGS, CAL)
    assert (decision.action, decision.step) == ("assessment_reminder", "assessment:1")
    assert decision.at == datetime(2026, 12, 4, 9, tzinfo=ZONE)
    assert state.assessment is not None
    state.assessment.closed_at = datetime(2026, 12, 2, tzinfo=UTC)
    assert rules.next_action(state, datetime(2026, 12, 2, tzinfo=UTC), SETTINGS, CAL).is_nothing


def test_paused_and_retired_cycles_do_nothing() -> None:
    for phase in ("paused", "retired"):
        decision = rules.next_action(_state(date(2026, 12, 1), phase=phase), datetime(2026, 11, 23, tzinfo=UTC),
                                     SETTINGS, CAL)
        assert decision.is_nothing and phase in decision.reason


def test_due_date_from_last_interval_or_the_row() -> None:
    today = date(2026, 11, 23)
    plan = rules.plan_due(KindFacts(interval_months=6, last=date(2026, 8, 31)), KIND, today)
    assert plan.data["due"] == "2027-02-28"  # month-end clamped
    later = rules.plan_due(KindFacts(last=date(2026, 1, 10), due=date(2027, 3, 1)), KIND, today)
    assert later.data["due"] == "2027-03-01" and "from the row" in later.reason
    newer_last = rules.plan_due(KindFacts(last=date(2026, 6, 1), due=date(2026, 12, 1)), KIND, today)
    assert newer_last.data["due"] == "2027-06-01" and "older" in newer_last.reason
    never = rules.plan_due(KindFacts(), KIND, today)
    assert never.data["due"] == today.isoformat() and "no calibration on record" in never.reason


def test_which_kinds_a_device_carries_and_what_its_status_asks() -> None:
    safety = SETTINGS.schedules["electrical_safety"]
    assert rules.applies("calibration", KIND, None).action == "track"
    assert rules.applies("electrical_safety", safety, KindFacts()).is_nothing
    assert rules.applies("electrical_safety", safety, KindFacts(interval_months=12)).action == "track"
    switched_off = ScheduleKind(enabled=False, last_field="a")
    assert rules.applies("x", switched_off, KindFacts(last=date(2026, 11, 30))).is_nothing
    device = rules.parse_device("rec1", {"设备编号": "ct-0012", "状态": "报废"}, SETTINGS, ZONE)
    assert device is not None and device.device_id == "CT-0012"
    assert rules.table_intent(device, SETTINGS).action == "retire"
    assert rules.table_intent(device.model_copy(update={"status": "维修中"}), SETTINGS).action == "pause"
    assert rules.table_intent(device.model_copy(update={"status": "合格"}), SETTINGS).action == "track"
    assert rules.parse_device("rec2", {"设备名称": "draft"}, SETTINGS, ZONE) is None


def test_results_and_iso_13485_consequences() -> None:
    assert rules.assess_result("pass", "pass").action == "pass"
    assert rules.assess_result("pass", "adjusted").action == "pass"
    assert rules.assess_result("fail", "adjusted").action == "assess"
    assert rules.assess_result("fail", "fail").action == "quarantine"
    assert rules.assess_result("pass", "fail").action == "quarantine"


def test_forms() -> None:
    today = date(2026, 11, 23)
    assert rules.parse_sent_out({"vendor": "省计量院", "sent_on": "2026-11-20 +0800"}, today) == (
        "省计量院", date(2026, 11, 20))
    missing = rules.parse_sent_out({"vendor": " "}, today)
    assert isinstance(missing, Decision) and missing.reason == "vendor is required"
    assert rules.problem_text(missing, "zh_CN") == "请填写送检单位"
    future = rules.parse_sent_out({"vendor": "v", "sent_on": "2026-12-01"}, today)
    assert isinstance(future, Decision) and "future" in future.reason
    good = {"performed_on": "2026-11-22 +0800", "performed_by": "v", "certificate": "c", "as_found": "PASS",
            "as_left": "adjusted"}
    parsed = rules.parse_result(good, today)
    assert isinstance(parsed, dict) and parsed["as_found"] == "pass" and parsed["performed_on"] == date(2026, 11, 22)
    no_certificate = rules.parse_result({**good, "certificate": ""}, today)
    assert isinstance(no_certificate, Decision) and no_certificate.reason == "certificate number is required"
    assert rules.problem_text(no_certificate, "en_US") == "the certificate number is required"
    odd = rules.parse_result({**good, "as_left": "ok"}, today)
    assert isinstance(odd, Decision) and "one of" in odd.reason


def test_device_ids_in_messages() -> None:
    pattern = SETTINGS.device_id_pattern
    assert rules.find_device_id("CT-0012 状态", pattern) == "CT-0012"
    assert rules.find_device_id("请问 ct-0012 的状态？", pattern) == "CT-0012"
    assert rules.find_device_id("你好", pattern) is None
    # a status question, or only the id; not another plugin's command that holds an id-shaped word
    assert rules.status_question("@_user_1 CT-0012 状态", pattern) == "CT-0012"
    assert rules.status_question("@_user_1 ct-0012", pattern) == "CT-0012"
    assert rules.status_question("US-0031 什么时候到期？", pattern) == "US-0031"
    assert rules.status_question("@_user_1 建群 协和医院 CT128 华北", pattern) is None
    assert cycle_key("CT-0012", "calibration") == "CT-0012"
    assert split_cycle_key(cycle_key("CT-0012", "electrical_safety")) == ("CT-0012", "electrical_safety")


def test_cells_round_trip() -> None:
    day = date(2026, 10, 12)
    assert cell_date(date_cell(day, ZONE), ZONE) == day
    assert cell_date("2026/10/12", ZONE) == day
    assert cell_person([{"id": "ou_x", "name": "张伟"}]) is not None
    assert cell_person("ou_y") is not None and cell_person("张伟") is None
    assert rules.recipients("department_head", DeviceInfo(device_id="A-01"), SETTINGS) == ["ou_m"]


def test_partial_reminders_keep_the_default_escalations() -> None:
    settings = DeviceCalibrationSettings.model_validate({"reminders": {"before_days": [14, 3]}})
    assert settings.reminders.before_days == [14, 3]
    assert [step.to for step in settings.reminders.after] == ["manager", "department_head"]


def test_settings_reject_mistakes() -> None:
    with pytest.raises(ValidationError):
        DeviceCalibrationSettings.model_validate({"grace_dayz": 3})
    with pytest.raises(ValidationError):
        DeviceCalibrationSettings.model_validate({"schedules": {"electrical_safety": {"last_field": "x"}}})
    with pytest.raises(ValidationError):
        DeviceCalibrationSettings.model_validate({"device_id_pattern": "(["})
    custom = DeviceCalibrationSettings.model_validate(
        {"reminders": {"before_days": [60, 14], "after": [{"every_days": 2, "to": "manager"}]}})
    assert custom.ladder_for("calibration").before_days == [60, 14]
    assert rules.toast("en_US", "sent_out", vendor="v", sent_on="d")["toast"].startswith("Recorded")
