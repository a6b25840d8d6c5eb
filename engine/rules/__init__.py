"""Pure, explainable building blocks for scenario rules: decisions, work calendars, ladders, recurrence.

Everything here is deterministic (callers pass ``now``; no wall clock, I/O or randomness) and safe to
import inside Temporal's workflow sandbox.
"""

from engine.rules.cron import CronError
from engine.rules.decision import Decision
from engine.rules.ladder import EscalationStep, LadderSettings, all_notices, next_notice
from engine.rules.recurrence import (
    ReportMonth,
    add_months,
    cron_iter,
    cron_next,
    first_workday_of_month,
    next_due,
    report_month,
    validate_cron,
)
from engine.rules.workdays import (
    WorkCalendar,
    as_zone,
    china_calendar_covers,
    describe_ranges,
    uncovered_ranges,
)

__all__ = [
    "CronError",
    "Decision",
    "EscalationStep",
    "LadderSettings",
    "ReportMonth",
    "WorkCalendar",
    "add_months",
    "all_notices",
    "as_zone",
    "china_calendar_covers",
    "cron_iter",
    "cron_next",
    "describe_ranges",
    "first_workday_of_month",
    "next_due",
    "next_notice",
    "report_month",
    "uncovered_ranges",
    "validate_cron",
]
