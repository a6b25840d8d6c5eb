"""A workflow that asks the work calendar about provisional days, to run inside the workflow sandbox.

Kept out of the test module: the sandbox re-imports a workflow's module for every run.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.rules import WorkCalendar


@workflow.defn(name="tests.CalendarProbe")
class CalendarProbe:
    @workflow.run
    async def run(self, first: str, count: int) -> list[tuple[str, bool, bool, str | None]]:
        """``[(day, is_workday, provisional, holiday_name), ...]`` for ``count`` days from ``first``."""
        calendar = WorkCalendar("Asia/Shanghai")
        start = date.fromisoformat(first)
        rows = []
        for offset in range(count):
            day = start + timedelta(days=offset)
            rows.append((day.isoformat(), calendar.is_workday(day), calendar.provisional(day),
                         calendar.holiday_name(day)))
        return rows
