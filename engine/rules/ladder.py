"""Deadline ladders: reminders before a due date, a notice on it, escalations after it.

A ladder is a plan of notices, each with a stable step id:

* ``before:30``, ``before:7``, ``before:1``: reminders to the owner, N calendar days before ``due``;
* ``due``: the owner's notice on the due day;
* ``after:manager:1``, ``after:manager:2``...: the k-th escalation to a role, every ``every_days`` after
  ``due + start_after_days``, ``times`` times or until resolved.

Each notice goes out at ``send_at`` local time. With ``working_days_only``, reminders and the due-day
notice move to the previous workday (a reminder must not arrive later than its lead time promised, and
the owner must hear before the deadline passes, not after), escalations to the next workday (they are
about something already late; escalating earlier than the rule says would be unfair to the owner).
Notices that land on the same moment collapse: the one nearer the due date is kept.

:func:`next_notice` is the pure decision a workflow makes in a loop::

    while True:
        decision = next_notice(due, fired, workflow.now(), settings, calendar)
        if decision.is_nothing:
            break                                   # everything sent (or wait for "resolved")
        if not decision.is_due(workflow.now()):
            await workflow.sleep(decision.at - workflow.now())   # or until a "resolved" signal
            continue                                # ask again: facts may have changed
        await send(decision)                        # idempotency key: the business key + decision.step
        fired.add(decision.step)

Missed notices (the worker was down, or the item was registered late):

* a notice whose moment passed but that never fired is due now ("catch-up"), with the reason saying so;
* except a reminder that a later one has made obsolete: once ``now`` is nearer the next reminder's moment
  than its own (or the next one already fired), it is skipped and listed in ``data["skipped"]``. A device
  registered 10 days before due so gets the 7-day and 1-day reminders, not a "due in 30 days" one, while
  a 7-day reminder missed by a few hours' outage still goes out. The due-day notice is never skipped;
* an escalation whose next occurrence on the same rung is already due is skipped too, so a long outage
  sends one escalation per role, not a burst of them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.rules.decision import Decision
from engine.rules.workdays import WorkCalendar

OWNER = "owner"
Kind = Literal["before", "due", "after"]


class EscalationStep(BaseModel):
    """One rung of escalation after the due date: every ``every_days``, to the role ``to``.

    The k-th escalation (k = 1, 2, ...) is planned ``start_after_days + k * every_days`` days after due;
    ``times=None`` repeats until the item is resolved.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    every_days: int = Field(ge=1)
    times: int | None = Field(default=None, ge=1)
    # The role goes into step ids ("after:manager:3"), so keep it to characters that cannot break them.
    to: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    start_after_days: int = Field(default=0, ge=0)


class LadderSettings(BaseModel):
    """How a deadline ladder runs for one organization (config, not code)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    before_days: list[int] = Field(default_factory=lambda: [30, 7, 1])
    on_due: bool = True
    after: list[EscalationStep] = Field(default_factory=list)
    working_days_only: bool = True
    send_at: time = time(9, 0)

    @field_validator("before_days")
    @classmethod
    def _lead_times(cls, value: list[int]) -> list[int]:
        if any(days < 1 for days in value):
            raise ValueError("lead times are whole days before due, at least 1 (the due day is `on_due`)")
        if len(set(value)) != len(value):
            raise ValueError(f"lead times must be distinct, got {value}")
        return sorted(value, reverse=True)

    @field_validator("send_at")
    @classmethod
    def _naive_send_at(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("send_at is a local wall-clock time; give it without a zone")
        return value

    @model_validator(mode="after")
    def _distinct_roles(self) -> LadderSettings:
        roles = [step.to for step in self.after]
        if len(set(roles)) != len(roles):
            raise ValueError(f"each escalation role may appear once in `after` (step ids use it), got {roles}")
        return self

    @property
    def lead_times(self) -> str:
        """The lead times as people write them: ``"30/7/1"``."""
        return "/".join(str(days) for days in self.before_days) or "none"


@dataclass(frozen=True)
class _Notice:
    step: str
    kind: Kind
    planned_day: date  # the day the rule names, before moving to a workday
    send_day: date
    at: datetime  # UTC
    to: str
    lead_days: int | None = None
    index: int | None = None  # k-th escalation of its rung
    rung: EscalationStep | None = None


# ------------------------------------------------------------------------------------------------ plan


def _moment(calendar: WorkCalendar, day: date, settings: LadderSettings) -> datetime:
    return calendar.at_local(day, settings.send_at).astimezone(UTC)


def _due_notice(due: date, settings: LadderSettings, calendar: WorkCalendar) -> _Notice:
    send_day = calendar.previous_workday(due) if settings.working_days_only else due
    return _Notice("due", "due", due, send_day, _moment(calendar, send_day, settings), OWNER)


def _reminders(due: date, settings: LadderSettings, calendar: WorkCalendar) -> list[_Notice]:
    """Before-due reminders and the due-day notice, in order, with collapsed moments removed."""
    notices = []
    for lead in settings.before_days:
        planned = due - timedelta(days=lead)
        send_day = calendar.previous_workday(planned) if settings.working_days_only else planned
        notices.append(
            _Notice(f"before:{lead}", "before", planned, send_day, _moment(calendar, send_day, settings), OWNER, lead)
        )
    if settings.on_due:
        notices.append(_due_notice(due, settings, calendar))
    # Moving to the previous workday can put two notices on the same moment (before:2 and before:1 over a
    # weekend): one message is enough, and the one nearer the due date says the truer number of days.
    kept: list[_Notice] = []
    for notice in reversed(notices):
        if not kept or notice.at < kept[-1].at:
            kept.append(notice)
    return kept[::-1]


def _escalations(
    due: date, rung: EscalationStep, settings: LadderSettings, calendar: WorkCalendar
) -> Iterator[_Notice]:
    """The occurrences of one escalation rung, numbered after collapsing those that share a send day."""
    base = due + timedelta(days=rung.start_after_days)
    last_send: date | None = None
    index = 0
    raw = 0
    while rung.times is None or index < rung.times:
        raw += 1
        planned = base + timedelta(days=raw * rung.every_days)
        send_day = calendar.next_workday(planned) if settings.working_days_only else planned
        # Daily escalations over a weekend or a holiday week all land on the next workday: send one, and
        # count it once, so "times" is the number of messages people actually get.
        if send_day == last_send:
            continue
        index += 1
        last_send = send_day
        yield _Notice(
            f"after:{rung.to}:{index}",
            "after",
            planned,
            send_day,
            _moment(calendar, send_day, settings),
            rung.to,
            index=index,
            rung=rung,
        )


# --------------------------------------------------------------------------------------------- reasons


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _relation(due: date, on: date) -> str:
    left = (due - on).days
    if left > 0:
        return f"due {due.isoformat()} in {_days(left)}"
    if left == 0:
        return f"due today {due.isoformat()}"
    return f"overdue since {due.isoformat()} by {_days(-left)}"


def _rule(notice: _Notice, settings: LadderSettings) -> str:
    if notice.kind == "before":
        return f"lead times {settings.lead_times}"
    if notice.kind == "due":
        return "due-day notice"
    rung = notice.rung
    assert rung is not None
    start = f" from due+{_days(rung.start_after_days)}" if rung.start_after_days else " after due"
    repeat = f"{rung.times} times" if rung.times is not None else "until resolved"
    return f"rule: every {_days(rung.every_days)}{start}, {repeat}"


def _reason(notice: _Notice, sent_on: date, due: date, settings: LadderSettings, calendar: WorkCalendar) -> str:
    relation = _relation(due, sent_on)
    rule = _rule(notice, settings)
    if notice.kind == "after":
        assert notice.rung is not None
        of = f"/{notice.rung.times}" if notice.rung.times is not None else ""
        text = f"escalation {notice.index}{of} to {notice.to}: {relation}, {rule}"
    else:
        text = f"reminder: {relation}, {rule}"
    notes = []
    if notice.send_day != notice.planned_day:
        label = {"before": f"the {notice.lead_days}-day notice", "due": "the due-day notice"}.get(
            notice.kind, "the escalation"
        )
        direction = "next" if notice.kind == "after" else "previous"
        notes.append(f"{label} moved from {notice.planned_day.isoformat()} to the {direction} workday")
    if settings.working_days_only:
        # the send day was chosen by workdays: say so when that choice rests on an estimated calendar
        note = calendar.provisional_note(notice.planned_day, notice.send_day)
        if note:
            notes.append(note)
    return f"{text} ({'; '.join(notes)})" if notes else text


def _decision(
    notice: _Notice,
    due: date,
    settings: LadderSettings,
    calendar: WorkCalendar,
    at: datetime | None = None,
    skipped: list[str] | None = None,
) -> Decision:
    """The Decision for ``notice``, sent at its planned moment or (catch-up) at ``at``."""
    catch_up = at is not None and at != notice.at
    when = at if at is not None else notice.at
    reason = _reason(notice, calendar.local(when).date(), due, settings, calendar)
    if catch_up:
        planned = calendar.local(notice.at).strftime("%Y-%m-%d %H:%M")
        reason += f"; catching up {notice.step}, planned for {planned}"
    if skipped:
        reason += f"; skipped as obsolete: {', '.join(skipped)}"
    data: dict[str, object] = {
        "to": notice.to,
        "kind": notice.kind,
        "due": due.isoformat(),
        "planned_at": notice.at.isoformat(),
        "catch_up": catch_up,
        "skipped": list(skipped or []),
        "calendar_covered": calendar.covered(notice.send_day.year),
        "calendar_provisional": settings.working_days_only
        and (calendar.provisional(notice.planned_day) or calendar.provisional(notice.send_day)),
    }
    if notice.lead_days is not None:
        data["lead_days"] = notice.lead_days
    if notice.rung is not None:
        data["escalation"] = notice.index
        data["times"] = notice.rung.times
    return Decision(
        action="escalate" if notice.kind == "after" else "remind",
        reason=reason,
        at=when,
        step=notice.step,
        data=data,
    )


# ------------------------------------------------------------------------------------------------- API


def all_notices(
    due: date, settings: LadderSettings, calendar: WorkCalendar, *, preview_unbounded: int = 3
) -> list[Decision]:
    """The whole plan for ``due`` as it goes when nothing is missed, in the order the notices go out.

    A rung that repeats until resolved (``times=None``) is shown with its first ``preview_unbounded``
    escalations.
    """
    _require_date(due)
    notices = list(_reminders(due, settings, calendar))
    for rung in settings.after:
        occurrences = _escalations(due, rung, settings, calendar)
        notices.extend(islice(occurrences, preview_unbounded) if rung.times is None else occurrences)
    # A stable sort keeps the configured order of rungs for escalations sent at the same moment.
    notices.sort(key=lambda notice: notice.at)
    return [_decision(notice, due, settings, calendar) for notice in notices]


def next_notice(
    due: date,
    fired: Collection[str],
    now: datetime,
    settings: LadderSettings,
    calendar: WorkCalendar,
) -> Decision:
    """The next notice of the ladder not yet in ``fired``, with when to send it and why.

    ``action`` is ``"remind"`` (to the owner: ``before:N``, ``due``) or ``"escalate"`` (``after:ROLE:K``),
    ``at`` is when (UTC), ``data["to"]`` the audience role. A notice whose moment has passed is due now
    (``at`` is ``now``; with ``working_days_only``, the next working moment from ``send_at`` on); obsolete
    ones are skipped and listed in ``data["skipped"]`` (see the module docstring). Returns a "none"
    decision when every notice has fired or been skipped. Record ``step`` in ``fired`` once sent.
    """
    _require_date(due)
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    fired = frozenset(fired)
    # Nothing can go out before the next working moment, and no notice is planned between now and then
    # (notices sit at send_at on workdays), so deciding "as of" that moment gives the same answer the
    # workflow gets when it wakes up there: a catch-up deferred from a Sunday is re-judged on Monday.
    as_of = calendar.next_working_moment(now, morning=settings.send_at) if settings.working_days_only else now
    skipped: list[str] = []
    candidates: list[_Notice] = []

    reminders = _reminders(due, settings, calendar)
    # The last reminder's successor, for obsolescence, is the due-day moment even when no due-day notice
    # is sent: a "due in 1 day" message is wrong once the due day has come.
    successors = [*reminders[1:], _due_notice(due, settings, calendar)] if reminders else []
    for i, (notice, successor) in enumerate(zip(reminders, successors, strict=True)):
        if notice.step in fired:
            continue
        if notice.kind == "before":
            later_fired = any(later.step in fired for later in reminders[i + 1 :])
            nearer_next = as_of >= notice.at + (successor.at - notice.at) / 2
            if later_fired or nearer_next:
                skipped.append(notice.step)
                continue
        candidates.append(notice)
        break  # reminders go out in order: the first one pending is the only candidate

    for rung in settings.after:
        prefix = f"after:{rung.to}:"
        fired_indexes = [
            int(step[len(prefix) :]) for step in fired if step.startswith(prefix) and step[len(prefix) :].isdigit()
        ]
        last_fired = max(fired_indexes, default=0)
        occurrences = _escalations(due, rung, settings, calendar)
        current = next(occurrences, None)
        while current is not None:
            following = next(occurrences, None)
            if current.step in fired:
                pass
            elif (current.index or 0) < last_fired or (following is not None and following.at <= as_of):
                skipped.append(current.step)
            else:
                candidates.append(current)
                break
            current = following

    if not candidates:
        return Decision.nothing(
            f"no notice left for due {due.isoformat()}: all sent or skipped", due=due.isoformat(), skipped=skipped
        )

    def effective_at(notice: _Notice) -> datetime:
        return notice.at if notice.at > as_of else as_of.astimezone(UTC)

    # min() keeps the first of equal moments: reminders before escalations, rungs in configured order.
    chosen = min(candidates, key=effective_at)
    at = effective_at(chosen)
    return _decision(chosen, due, settings, calendar, at=at if at != chosen.at else None, skipped=skipped)


def _require_date(due: date) -> None:
    if isinstance(due, datetime) or not isinstance(due, date):
        raise TypeError(f"due must be a date, got {due!r}")
