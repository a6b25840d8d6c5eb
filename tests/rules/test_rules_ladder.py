"""Deadline ladders: the plan, workday moves, late registration, catch-up, escalation, each step once."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from engine.rules import Decision, EscalationStep, LadderSettings, WorkCalendar, all_notices, next_notice

SHANGHAI = ZoneInfo("Asia/Shanghai")
DUE = date(2026, 11, 16)  # a Monday; 30 days before is a Saturday, 1 day before a Sunday


def sh(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(SHANGHAI)


@pytest.fixture
def settings() -> LadderSettings:
    # Daily escalation to the manager (three times), weekly to the head of department until resolved.
    return LadderSettings(
        after=[
            EscalationStep(every_days=1, times=3, to="manager"),
            EscalationStep(every_days=7, to="head"),
        ]
    )


def run_ladder(
    due: date,
    start: datetime,
    settings: LadderSettings,
    cal: WorkCalendar,
    fired: Collection[str] = (),
    limit: int = 12,
) -> list[tuple[str, datetime, Decision]]:
    """What a workflow does: ask, sleep until ``at`` (simulated), ask again, send, record the step."""
    fired = set(fired)
    now = start
    sent: list[tuple[str, datetime, Decision]] = []
    for _ in range(100):
        decision = next_notice(due, fired, now, settings, cal)
        if decision.is_nothing or len(sent) == limit:
            break
        if not decision.is_due(now):
            assert decision.at is not None and decision.at > now
            now = decision.at
            continue
        assert decision.step is not None and decision.step not in fired
        sent.append((decision.step, now.astimezone(SHANGHAI), decision))
        fired.add(decision.step)
    return sent


# ---------------------------------------------------------------------------------------------- plan


def test_plan_for_a_device_due_in_45_days(cal: WorkCalendar, settings: LadderSettings) -> None:
    plan = all_notices(DUE, settings, cal)
    assert [(d.step, d.at, d.data["to"], d.action) for d in plan] == [
        ("before:30", sh(2026, 10, 16), "owner", "remind"),  # 10-17 is a Saturday: Friday before
        ("before:7", sh(2026, 11, 9), "owner", "remind"),
        ("before:1", sh(2026, 11, 13), "owner", "remind"),  # 11-15 is a Sunday: Friday before
        ("due", sh(2026, 11, 16), "owner", "remind"),
        ("after:manager:1", sh(2026, 11, 17), "manager", "escalate"),
        ("after:manager:2", sh(2026, 11, 18), "manager", "escalate"),
        ("after:manager:3", sh(2026, 11, 19), "manager", "escalate"),
        ("after:head:1", sh(2026, 11, 23), "head", "escalate"),
        ("after:head:2", sh(2026, 11, 30), "head", "escalate"),
        ("after:head:3", sh(2026, 12, 7), "head", "escalate"),  # open-ended: the first three shown
    ]
    assert all(d.at is not None and d.at.tzinfo is UTC for d in plan)
    reasons = {d.step: d.reason for d in plan}
    assert reasons["before:7"] == "reminder: due 2026-11-16 in 7 days, lead times 30/7/1"
    assert reasons["before:1"] == (
        "reminder: due 2026-11-16 in 3 days, lead times 30/7/1 "
        "(the 1-day notice moved from 2026-11-15 to the previous workday)"
    )
    assert reasons["due"] == "reminder: due today 2026-11-16, due-day notice"
    assert reasons["after:manager:2"] == (
        "escalation 2/3 to manager: overdue since 2026-11-16 by 2 days, rule: every 1 day after due, 3 times"
    )
    assert reasons["after:head:1"] == (
        "escalation 1 to head: overdue since 2026-11-16 by 7 days, rule: every 7 days after due, until resolved"
    )
    assert len(all_notices(DUE, settings, cal, preview_unbounded=5)) == 12


def test_reason_matches_the_design_example(cal: WorkCalendar) -> None:
    plan = {d.step: d for d in all_notices(date(2026, 12, 30), LadderSettings(), cal)}
    assert plan["before:7"].reason == "reminder: due 2026-12-30 in 7 days, lead times 30/7/1"
    assert plan["before:7"].at == sh(2026, 12, 23)
    assert list(plan) == ["before:30", "before:7", "before:1", "due"]  # no escalation configured


def test_plan_around_national_day_and_a_saturday_due_date(cal: WorkCalendar, settings: LadderSettings) -> None:
    due = date(2026, 10, 31)  # a Saturday
    plan = all_notices(due, settings, cal)
    assert [(d.step, d.at) for d in plan][:6] == [
        ("before:30", sh(2026, 9, 30)),  # 10-01 is National Day: the last workday before it
        ("before:7", sh(2026, 10, 23)),
        # before:1 (Friday 10-30) and the due-day notice (moved from Saturday to Friday) share a moment:
        # only the due-day notice goes out.
        ("due", sh(2026, 10, 30)),
        ("after:manager:1", sh(2026, 11, 2)),  # Sunday 11-01 -> Monday; Monday's own occurrence merges
        ("after:manager:2", sh(2026, 11, 3)),
        ("after:manager:3", sh(2026, 11, 4)),
    ]
    due_notice = next(d for d in plan if d.step == "due")
    assert due_notice.reason == (
        "reminder: due 2026-10-31 in 1 day, due-day notice "
        "(the due-day notice moved from 2026-10-31 to the previous workday)"
    )


def test_escalation_start_after_days_and_calendar_days(cal: WorkCalendar) -> None:
    settings = LadderSettings(
        before_days=[],
        on_due=False,
        working_days_only=False,
        send_at=time(10, 30),
        after=[EscalationStep(every_days=2, times=2, to="director", start_after_days=3)],
    )
    plan = all_notices(DUE, settings, cal)
    # due + 3 + 2k calendar days, weekends included: Saturday 11-21 stays a Saturday.
    assert [(d.step, d.at) for d in plan] == [
        ("after:director:1", sh(2026, 11, 21, 10, 30)),
        ("after:director:2", sh(2026, 11, 23, 10, 30)),
    ]
    assert plan[0].reason == (
        "escalation 1/2 to director: overdue since 2026-11-16 by 5 days, rule: every 2 days from due+3 days, 2 times"
    )


def test_fallback_year_is_reported(cal: WorkCalendar, settings: LadderSettings) -> None:
    plan = {d.step: d for d in all_notices(date(2026, 12, 30), settings, cal)}
    # The installed calendar has no 2027 data: New Year's Day 2027 (a Friday) is off provisionally, so the
    # second daily escalation moves over it and the weekend to Monday, and its reason says provisional.
    second = plan["after:manager:2"]
    assert second.at == sh(2027, 1, 4)
    assert second.data["calendar_covered"] is False
    assert second.data["calendar_provisional"] is True
    assert second.reason.endswith(
        "(the escalation moved from 2027-01-01 to the next workday; "
        "provisional calendar for 2027: no official holiday data, make-up workdays unknown)"
    )
    assert plan["after:manager:3"].at == sh(2027, 1, 5)
    first = plan["after:manager:1"]  # 2026-12-31 comes from the official data
    assert first.data["calendar_covered"] is True
    assert first.data["calendar_provisional"] is False
    assert "provisional" not in first.reason


def test_config_extras_make_a_fallback_day_official(settings: LadderSettings) -> None:
    # The organization lists 2027-01-01 as its own holiday: no longer provisional, the weekend still is.
    listed = WorkCalendar(SHANGHAI, holidays=[date(2027, 1, 1)], workdays=[date(2027, 1, 2)])
    plan = {d.step: d for d in all_notices(date(2026, 12, 30), settings, listed)}
    assert plan["after:manager:2"].at == sh(2027, 1, 2)  # a Saturday made a workday in config
    assert plan["after:manager:2"].data["calendar_provisional"] is False
    assert "provisional" not in plan["after:manager:2"].reason


def test_calendar_days_ladder_does_not_claim_provisional(cal: WorkCalendar) -> None:
    settings = LadderSettings(working_days_only=False, after=[EscalationStep(every_days=1, times=3, to="manager")])
    plan = {d.step: d for d in all_notices(date(2026, 12, 30), settings, cal)}
    assert plan["after:manager:2"].at == sh(2027, 1, 1)  # calendar days: workdays play no part
    assert plan["after:manager:2"].data["calendar_provisional"] is False
    assert "provisional" not in plan["after:manager:2"].reason


def test_config_holiday_moves_a_reminder(settings: LadderSettings) -> None:
    cal = WorkCalendar(SHANGHAI, holidays=[date(2026, 11, 9)])  # the hospital's own day off
    plan = {d.step: d for d in all_notices(DUE, settings, cal)}
    assert plan["before:7"].at == sh(2026, 11, 6)


# ------------------------------------------------------------------------------------------ the loop


def test_each_step_fires_once_in_order(cal: WorkCalendar, settings: LadderSettings) -> None:
    sent = run_ladder(DUE, sh(2026, 10, 2, 10, 0), settings, cal, limit=10)  # registered 45 days before due
    assert [(step, at) for step, at, _ in sent] == [
        ("before:30", sh(2026, 10, 16)),
        ("before:7", sh(2026, 11, 9)),
        ("before:1", sh(2026, 11, 13)),
        ("due", sh(2026, 11, 16)),
        ("after:manager:1", sh(2026, 11, 17)),
        ("after:manager:2", sh(2026, 11, 18)),
        ("after:manager:3", sh(2026, 11, 19)),
        ("after:head:1", sh(2026, 11, 23)),
        ("after:head:2", sh(2026, 11, 30)),
        ("after:head:3", sh(2026, 12, 7)),
    ]
    assert all(not decision.data["catch_up"] and not decision.data["skipped"] for _, _, decision in sent)


def test_after_firing_the_same_moment_gives_the_next_step(cal: WorkCalendar, settings: LadderSettings) -> None:
    now = sh(2026, 11, 9)
    first = next_notice(DUE, {"before:30"}, now, settings, cal)
    assert (first.step, first.at, first.is_due(now)) == ("before:7", now, True)
    second = next_notice(DUE, {"before:30", "before:7"}, now, settings, cal)
    assert (second.step, second.at, second.is_due(now)) == ("before:1", sh(2026, 11, 13), False)


def test_everything_fired_means_nothing_to_do(cal: WorkCalendar) -> None:
    settings = LadderSettings(after=[EscalationStep(every_days=1, times=2, to="manager")])
    fired = {"before:30", "before:7", "before:1", "due", "after:manager:1", "after:manager:2"}
    decision = next_notice(DUE, fired, sh(2027, 6, 1), settings, cal)
    assert decision.is_nothing
    assert decision.action == "none"
    assert decision.at is None and decision.step is None
    assert decision.reason == "no notice left for due 2026-11-16: all sent or skipped"
    assert not decision.is_due(sh(2027, 6, 1))


# ---------------------------------------------------------------------------- late registration, outage


def test_registered_ten_days_before_due_skips_the_30_day_notice(cal: WorkCalendar, settings: LadderSettings) -> None:
    now = sh(2026, 11, 6, 10, 0)
    decision = next_notice(DUE, set(), now, settings, cal)
    assert decision.step == "before:7"
    assert decision.at == sh(2026, 11, 9)
    assert decision.data["skipped"] == ["before:30"]
    assert decision.reason == "reminder: due 2026-11-16 in 7 days, lead times 30/7/1; skipped as obsolete: before:30"
    sent = run_ladder(DUE, now, settings, cal, limit=4)
    assert [(step, at) for step, at, _ in sent] == [
        ("before:7", sh(2026, 11, 9)),
        ("before:1", sh(2026, 11, 13)),
        ("due", sh(2026, 11, 16)),
        ("after:manager:1", sh(2026, 11, 17)),
    ]


def test_at_six_days_the_30_day_notice_is_obsolete_but_the_7_day_one_catches_up(
    cal: WorkCalendar, settings: LadderSettings
) -> None:
    now = sh(2026, 11, 10, 10, 0)
    decision = next_notice(DUE, set(), now, settings, cal)
    assert decision.step == "before:7"
    assert decision.at == now
    assert decision.is_due(now)
    assert decision.data["catch_up"] is True
    assert decision.data["skipped"] == ["before:30"]
    assert decision.reason == (
        "reminder: due 2026-11-16 in 6 days, lead times 30/7/1; catching up before:7, planned for 2026-11-09 09:00; "
        "skipped as obsolete: before:30"
    )


def test_nearer_the_next_reminder_the_missed_one_is_skipped(cal: WorkCalendar, settings: LadderSettings) -> None:
    # before:7 was planned 11-09 09:00, before:1 is 11-13 09:00: past the midpoint, wait for before:1.
    decision = next_notice(DUE, set(), sh(2026, 11, 11, 10, 0), settings, cal)
    assert decision.step == "before:1"
    assert decision.at == sh(2026, 11, 13)
    assert decision.data["skipped"] == ["before:30", "before:7"]


def test_catch_up_after_an_outage(cal: WorkCalendar, settings: LadderSettings) -> None:
    # The worker was down from Monday 11-09 08:00 to 15:00: the 7-day reminder goes out at 15:00.
    back = sh(2026, 11, 9, 15, 0)
    decision = next_notice(DUE, {"before:30"}, back, settings, cal)
    assert (decision.step, decision.at, decision.action) == ("before:7", back, "remind")
    assert decision.data["catch_up"] is True
    assert decision.data["planned_at"] == "2026-11-09T01:00:00+00:00"
    assert decision.data["skipped"] == []
    assert "catching up before:7, planned for 2026-11-09 09:00" in decision.reason


def test_catch_up_over_a_weekend_waits_for_monday_and_is_rejudged(cal: WorkCalendar, settings: LadderSettings) -> None:
    # Back on Saturday 11-14 with before:1 (Friday 09:00) unsent: nothing goes out before Monday 09:00,
    # and by then the due-day notice has made before:1 obsolete.
    saturday = sh(2026, 11, 14, 11, 0)
    decision = next_notice(DUE, {"before:30", "before:7"}, saturday, settings, cal)
    assert (decision.step, decision.at) == ("due", sh(2026, 11, 16))
    assert decision.data["skipped"] == ["before:1"]
    assert not decision.is_due(saturday)
    # Without working-days-only, before:1 stays on Sunday 11-15 09:00, and a catch-up that Sunday evening
    # (before the midpoint to the due-day notice) goes out at once.
    anytime = settings.model_copy(update={"working_days_only": False})
    sunday_evening = sh(2026, 11, 15, 20, 0)
    immediate = next_notice(DUE, {"before:30", "before:7"}, sunday_evening, anytime, cal)
    assert (immediate.step, immediate.at) == ("before:1", sunday_evening)
    assert immediate.reason == (
        "reminder: due 2026-11-16 in 1 day, lead times 30/7/1; catching up before:1, planned for 2026-11-15 09:00"
    )


def test_long_outage_sends_one_escalation_per_role(cal: WorkCalendar, settings: LadderSettings) -> None:
    # Down from before the due day until Wednesday 11-25 10:00.
    back = sh(2026, 11, 25, 10, 0)
    sent = run_ladder(DUE, back, settings, cal, fired={"before:30", "before:7", "before:1"}, limit=4)
    assert [(step, at) for step, at, _ in sent] == [
        ("due", back),  # the owner still hears, late, and is told so
        ("after:manager:3", back),  # the last manager rung; 1 and 2 are obsolete
        ("after:head:1", back),
        ("after:head:2", sh(2026, 11, 30)),
    ]
    due_decision = sent[0][2]
    assert due_decision.reason.startswith("reminder: overdue since 2026-11-16 by 9 days, due-day notice")
    assert sent[1][2].data["skipped"] == ["after:manager:1", "after:manager:2"]


def test_a_later_fired_step_makes_earlier_ones_obsolete(cal: WorkCalendar, settings: LadderSettings) -> None:
    decision = next_notice(DUE, {"before:1"}, sh(2026, 10, 2, 10, 0), settings, cal)
    assert decision.step == "due"
    assert decision.data["skipped"] == ["before:30", "before:7"]
    escalation = next_notice(
        DUE, {"before:30", "before:7", "before:1", "due", "after:manager:2"}, sh(2026, 11, 17, 9, 0), settings, cal
    )
    assert escalation.step == "after:manager:3"
    assert escalation.data["skipped"] == ["after:manager:1"]


def test_without_due_notice_a_1_day_reminder_is_obsolete_on_the_due_day(cal: WorkCalendar) -> None:
    settings = LadderSettings(before_days=[1], on_due=False, working_days_only=False)
    assert next_notice(DUE, set(), sh(2026, 11, 15, 10, 0), settings, cal).step == "before:1"
    decision = next_notice(DUE, set(), sh(2026, 11, 15, 22, 0), settings, cal)
    assert decision.is_nothing
    assert decision.data["skipped"] == ["before:1"]


def test_naive_now_is_rejected(cal: WorkCalendar, settings: LadderSettings) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_notice(DUE, set(), datetime(2026, 11, 9, 9, 0), settings, cal)
    with pytest.raises(TypeError):
        next_notice(sh(2026, 11, 16), set(), sh(2026, 11, 9), settings, cal)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ settings


def test_settings_defaults_and_normalization() -> None:
    settings = LadderSettings()
    assert settings.before_days == [30, 7, 1]
    assert settings.on_due and settings.working_days_only
    assert settings.send_at == time(9, 0)
    assert settings.after == []
    assert LadderSettings(before_days=[1, 30, 7]).before_days == [30, 7, 1]
    parsed = LadderSettings.model_validate(
        {"before_days": [14, 3], "send_at": "08:30", "after": [{"every_days": 1, "to": "manager"}]}
    )
    assert parsed.lead_times == "14/3"
    assert parsed.send_at == time(8, 30)
    assert parsed.after[0] == EscalationStep(every_days=1, times=None, to="manager", start_after_days=0)


@pytest.mark.parametrize(
    "raw",
    [
        {"before_days": [7, 7]},
        {"before_days": [0]},
        {"after": [{"every_days": 1, "to": "manager"}, {"every_days": 7, "to": "manager"}]},
        {"after": [{"every_days": 0, "to": "manager"}]},
        {"after": [{"every_days": 1, "times": 0, "to": "manager"}]},
        {"after": [{"every_days": 1, "to": "head:of"}]},
        {"unknown": True},
    ],
)
def test_bad_settings_are_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LadderSettings.model_validate(raw)


# ------------------------------------------------------------------------------------------ decision


def test_decision_model() -> None:
    nothing = Decision.nothing("no device registered", device="A-1")
    assert (nothing.action, nothing.reason, nothing.at, nothing.step, nothing.data) == (
        "none",
        "no device registered",
        None,
        None,
        {"device": "A-1"},
    )
    wait = Decision(action="wait", reason="loan ends tomorrow", at=sh(2026, 11, 17), step="loan:end")
    assert wait.is_due(sh(2026, 11, 17)) and not wait.is_due(sh(2026, 11, 16))
    assert Decision.model_validate_json(wait.model_dump_json()) == wait
    with pytest.raises(ValidationError):
        Decision(action="remind", reason="x", at=datetime(2026, 11, 17, 9, 0))
    with pytest.raises(ValidationError):
        wait.action = "none"  # type: ignore[misc]


def test_a_ladder_without_any_notice_decides_nothing(cal: WorkCalendar) -> None:
    # no reminder, no due-day notice, no escalation: a site that wants no chasing at all
    quiet = LadderSettings(before_days=[], on_due=False, after=[])
    decision = next_notice(DUE, [], sh(2026, 11, 10), quiet, cal)
    assert decision.is_nothing
    assert all_notices(DUE, quiet, cal) == []


def test_a_ladder_of_escalations_only_starts_after_the_due_day(cal: WorkCalendar) -> None:
    late_only = LadderSettings(before_days=[], on_due=False, after=[EscalationStep(every_days=1, times=1, to="head")])
    decision = next_notice(DUE, [], sh(2026, 11, 10), late_only, cal)
    assert (decision.step, decision.at) == ("after:head:1", sh(2026, 11, 17).astimezone(UTC))
