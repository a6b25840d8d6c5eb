"""Pure decisions of the device_calibration scenario, each with the reason for it.

Built on :mod:`engine.rules` (work calendar, deadline ladder, month arithmetic). Nothing here does I/O or
reads the wall clock: the cycle workflow calls these functions with ``workflow.now()``, and the tests
call them with any moment they like.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.sdk import Decision, Texts, WorkCalendar, next_due, next_notice
from plugins.device_calibration.config import PRIMARY_KIND, DeviceCalibrationSettings, LogFields, ScheduleKind
from plugins.device_calibration.models import (
    CalendarFacts,
    CalibrationResult,
    CycleState,
    DeviceInfo,
    DeviceRecord,
    HistoryEntry,
    KindFacts,
    cell_date,
    cell_int,
    cell_person,
    cell_text,
)

RESULT_VALUES = ("pass", "fail", "adjusted")
USABLE = ("pass", "adjusted")

# ---------------------------------------------------------------------------------------- the calendar


def build_calendar(facts: CalendarFacts) -> WorkCalendar:
    """The organization's work calendar (China holidays and make-up days, plus its own extra days)."""
    return WorkCalendar(ZoneInfo(facts.timezone), holidays=facts.holidays, workdays=facts.workdays)


def local_midnight(day: date, calendar: WorkCalendar) -> datetime:
    """The start of ``day`` in the organization's zone, as UTC."""
    return calendar.at_local(day, time(0, 0)).astimezone(UTC)


def days_left(due: date | None, now: datetime, zone: ZoneInfo) -> int | None:
    """Calendar days from today (in ``zone``) to ``due``: 0 on the due day, negative once overdue."""
    if due is None:
        return None
    return (due - now.astimezone(zone).date()).days


# -------------------------------------------------------------------------------------------- records


def parse_device(record_id: str, fields: dict[str, Any], settings: DeviceCalibrationSettings,
                 zone: ZoneInfo) -> DeviceRecord | None:
    """Decode one row of the device table; None when it has no device id (an empty or draft row)."""
    names = settings.fields
    device_id = cell_text(fields.get(names.device_id)).upper()
    if not device_id:
        return None
    info = DeviceInfo(
        device_id=device_id, name=cell_text(fields.get(names.name)), model=cell_text(fields.get(names.model)),
        department=cell_text(fields.get(names.department)), location=cell_text(fields.get(names.location)),
        site=cell_text(fields.get(names.site)),
        custodian=cell_person(fields.get(names.custodian)), manager=cell_person(fields.get(names.manager)),
        department_head=cell_person(fields.get(names.department_head)))
    kinds = {}
    for name, kind in settings.schedules.items():
        kinds[name] = KindFacts(
            interval_months=cell_int(fields.get(kind.interval_field)) if kind.interval_field else None,
            last=cell_date(fields.get(kind.last_field), zone),
            due=cell_date(fields.get(kind.due_field), zone) if kind.due_field else None,
            certificate=cell_text(fields.get(kind.certificate_field)) if kind.certificate_field else "")
    return DeviceRecord(record_id=record_id, info=info, status=cell_text(fields.get(names.status)), kinds=kinds)


def applies(kind_name: str, kind: ScheduleKind, facts: KindFacts | None) -> Decision:
    """Whether a device carries this schedule kind (``track``) or not (``none``), and why."""
    if not kind.enabled:
        return Decision.nothing(f"{kind_name}: switched off in settings")
    if kind.always:
        return Decision(action="track", reason=f"{kind_name}: every device has it")
    if facts is not None and (facts.interval_months or facts.last or facts.due):
        return Decision(action="track", reason=f"{kind_name}: the row gives an interval or a date for it")
    return Decision.nothing(f"{kind_name}: the row has no interval or date for it")


def table_intent(device: DeviceRecord, settings: DeviceCalibrationSettings) -> Decision:
    """What the row's status asks for: ``retire``, ``pause`` or ``track``."""
    status = device.status.strip().lower()
    if status and status in {value.lower() for value in settings.retired_values}:
        return Decision(action="retire", reason=f"status {device.status!r} means retired")
    if status and status in {value.lower() for value in settings.paused_values}:
        return Decision(action="pause", reason=f"status {device.status!r} means paused")
    return Decision(action="track", reason="the device is in use")


def plan_due(facts: KindFacts, kind: ScheduleKind, today: date) -> Decision:
    """The due date of the current cycle from the row: last + interval, or the row's own due date.

    With both, the later one wins: a due date later than last + interval is an extension the
    organization wrote down, a last date that moved on means someone recorded a newer calibration by hand.
    A row with neither was never calibrated as far as the table knows: due today, so the device is not
    used until someone records a calibration.
    """
    interval = facts.interval_months or kind.interval_months
    computed = next_due(facts.last, interval) if facts.last is not None else None
    if facts.due is not None and (computed is None or facts.due >= computed):
        note = f" (later than last {facts.last.isoformat()} + {interval} months)" \
            if computed is not None and facts.due > computed else ""
        return Decision(action="due", reason=f"due {facts.due.isoformat()} from the row{note}",
                        data={"due": facts.due.isoformat(), "interval": interval})
    if computed is not None and facts.last is not None:
        note = f" (the row's due date {facts.due.isoformat()} is older)" if facts.due is not None else ""
        return Decision(action="due", reason=f"due {computed.isoformat()} = last {facts.last.isoformat()} + "
                                             f"{interval} months{note}",
                        data={"due": computed.isoformat(), "interval": interval})
    return Decision(action="due", reason="no calibration on record: due today, not to be used until calibrated",
                    data={"due": today.isoformat(), "interval": interval, "undated": True})


# ------------------------------------------------------------------------------------------- recipients


def recipients(role: str, info: DeviceInfo, settings: DeviceCalibrationSettings) -> list[str]:
    """Who a ladder role is for this device (open_ids), falling back up the chain so someone always hears."""
    managers = [info.manager.open_id] if info.manager else list(settings.default_managers)
    if role == "owner":
        return [info.custodian.open_id] if info.custodian else managers
    if role == "manager":
        return managers
    if role == "department_head":
        return [info.department_head.open_id] if info.department_head else managers
    if role == "owner+manager":
        people = [info.custodian.open_id] if info.custodian else []
        return list(dict.fromkeys(people + managers))
    return managers


# ------------------------------------------------------------------------------------------ the cycle


def _status_steps(state: CycleState, settings: DeviceCalibrationSettings,
                  calendar: WorkCalendar) -> list[tuple[str, datetime, str]]:
    """Bitable status changes at the due date: (step, moment, stage). Not notices: they ignore workdays."""
    if state.due is None:
        return []
    grace = settings.grace_for(state.kind)
    if grace:
        return [("status:grace", local_midnight(state.due, calendar), "grace"),
                ("status:overdue", local_midnight(state.due + timedelta(days=grace), calendar), "overdue")]
    return [("status:overdue", local_midnight(state.due, calendar), "overdue")]


def _status_decision(state: CycleState, now: datetime, settings: DeviceCalibrationSettings,
                     calendar: WorkCalendar) -> Decision | None:
    for step, at, stage in _status_steps(state, settings, calendar):
        if step in state.fired:
            continue
        due = state.due.isoformat() if state.due else "?"
        reason = (f"due {due} passed without a result: limited use (准用) for the {settings.grace_for(state.kind)}-day "
                  "grace period") if stage == "grace" else f"due {due} passed without a result: not to be used"
        return Decision(action="status", reason=reason, at=max(at, now), step=step, data={"stage": stage})
    return None


def _repeating(prefix: str, first: date, every: int, state: CycleState, now: datetime, send_at: time,
               calendar: WorkCalendar) -> tuple[str, datetime, int]:
    """The next occurrence of a repeating working-day notice (``prefix:k``), skipping ones long missed."""
    fired = [int(step.rsplit(":", 1)[1]) for step in state.fired if step.startswith(prefix + ":")]
    k = max(fired, default=0) + 1

    def moment(index: int) -> datetime:
        day = first + timedelta(days=(index - 1) * every)
        return calendar.next_working_moment(calendar.at_local(day, send_at), morning=send_at)

    # after a long outage, one notice rather than a burst of them
    while moment(k + 1) <= now:
        k += 1
    at = moment(k)
    if at < now:  # missed (paused, or the worker was down): now, within working hours
        at = calendar.next_working_moment(now, morning=send_at)
    return f"{prefix}:{k}", at, k


def next_action(state: CycleState, now: datetime, settings: DeviceCalibrationSettings,
                calendar: WorkCalendar) -> Decision:
    """The next thing the cycle does by itself (a notice, a status change), when, and why.

    Paused and retired cycles do nothing; a sent-out device gets "away too long" reminders; a quarantined
    one reminds the manager of the open assessment; otherwise the reminder/escalation ladder runs, and the
    Bitable status turns 准用 / 停用 at the due date (after the grace period).
    """
    if state.phase in ("paused", "retired", "not_found"):
        return Decision.nothing(f"cycle is {state.phase}")
    ladder = settings.ladder_for(state.kind)
    if state.phase == "quarantined":
        if state.assessment is None or state.assessment.closed_at is not None:
            return Decision.nothing("quarantined: waiting for a passing calibration result")
        opened = calendar.local(state.assessment.opened_at).date()
        every = settings.assessment_reminder_days
        step, at, k = _repeating("assessment", opened + timedelta(days=every), every, state, now, ladder.send_at,
                                 calendar)
        return Decision(action="assessment_reminder", at=at, step=step, data={"index": k},
                        reason=f"out-of-tolerance assessment open since {opened.isoformat()}: reminder {k}, "
                               f"every {every} days until closed")
    candidates: list[Decision] = []
    status = _status_decision(state, now, settings, calendar)
    if status is not None:
        candidates.append(status)
    if state.phase == "sent_out" and state.sent_out is not None:
        away = settings.sent_out_reminder_days
        step, at, k = _repeating("away", state.sent_out.sent_on + timedelta(days=away),
                                 settings.sent_out_repeat_days, state, now, ladder.send_at, calendar)
        candidates.append(Decision(
            action="away_reminder", at=at, step=step, data={"index": k},
            reason=f"sent to {state.sent_out.vendor} on {state.sent_out.sent_on.isoformat()}: away longer than "
                   f"{away} days (reminder {k}, then every {settings.sent_out_repeat_days} days)"))
    elif state.due is not None:
        notice = next_notice(state.due, state.fired, now, ladder, calendar)
        if not notice.is_nothing:
            candidates.append(notice)
    if not candidates:
        return Decision.nothing("nothing scheduled: every notice sent, waiting for a result")
    return min(candidates, key=lambda decision: decision.at or now)


def assess_result(as_found: str, as_left: str) -> Decision:
    """What a calibration result means for the device (ISO 13485 §7.6).

    * as-left fail: the device cannot be used: quarantine (停用) and assess earlier results;
    * as-found fail, as-left pass/adjusted: it is fine now, but it was out of tolerance while in use:
      the earlier results must be assessed before it returns to service;
    * otherwise: pass, the next cycle starts.
    """
    if as_left == "fail":
        return Decision(action="quarantine",
                        reason="as-left fail: the device is out of tolerance and cannot be used; quarantined, "
                               "earlier results to be assessed")
    if as_found == "fail":
        return Decision(action="assess",
                        reason=f"found out of tolerance (as-found fail, as-left {as_left}): earlier results must be "
                               "assessed before the device returns to service")
    return Decision(action="pass", reason=f"as-found {as_found}, as-left {as_left}: in tolerance")


def bitable_labels(phase: str, stage: str, settings: DeviceCalibrationSettings) -> tuple[str, str]:
    """(usage status, cycle state) written into the row for a phase (and overdue stage)."""
    status, states = settings.status_labels, settings.cycle_state_labels
    if phase == "overdue":
        return (status.limited, states.grace) if stage == "grace" else (status.out_of_service, states.overdue)
    table = {
        "active": (status.in_service, states.ok),
        "sent_out": (status.out_of_service, states.sent_out),
        "quarantined": (status.out_of_service, states.quarantined),
        "paused": (status.out_of_service, states.paused),
        "retired": (status.out_of_service, states.retired),
    }
    return table.get(phase, (status.in_service, states.ok))


def combined_status(own: str, kind: str, row: dict[str, Any], settings: DeviceCalibrationSettings) -> str:
    """The usage status to write for ``kind`` given the other kinds' cycle states on the same row.

    The status column is the device's, shared by its kinds: a passing calibration must not put 合格 over
    an electrical safety test that is overdue. The most restrictive of the kinds wins.
    """
    status, states = settings.status_labels, settings.cycle_state_labels
    rank = {status.in_service: 0, status.limited: 1, status.out_of_service: 2}
    implied = {states.grace: status.limited, states.overdue: status.out_of_service,
               states.quarantined: status.out_of_service}
    worst = own
    for name, other in settings.schedules.items():
        if name == kind or not other.enabled or not other.state_field:
            continue
        label = implied.get(cell_text(row.get(other.state_field)))
        if label is not None and rank.get(label, 0) > rank.get(worst, 0):
            worst = label
    return worst


# ---------------------------------------------------------------------------------------------- forms


def form_date(value: Any) -> date | None:
    """A date from a card date picker ("2026-11-30 +0800") or an ISO text."""
    text = cell_text(value)
    if len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _problem(code: str, reason: str) -> Decision:
    """A form refused: ``reason`` for the log, ``code`` for the person's toast (see :func:`problem_text`)."""
    return Decision(action="refuse", reason=reason, data={"code": code})


def parse_sent_out(values: dict[str, Any], today: date) -> tuple[str, date] | Decision:
    """(vendor, sent on) from the "sent for calibration" form, or a ``refuse`` decision saying what is wrong."""
    vendor = cell_text(values.get("vendor"))
    if not vendor:
        return _problem("vendor_required", "vendor is required")
    sent_on = form_date(values.get("sent_on")) or today
    if sent_on > today:
        return _problem("sent_on_future", f"sent-on date {sent_on.isoformat()} is in the future")
    return vendor, sent_on


def parse_result(values: dict[str, Any], today: date) -> dict[str, Any] | Decision:
    """The fields of a calibration result from the "calibrated" form, or a ``refuse`` decision saying what is
    wrong."""
    performed_on = form_date(values.get("performed_on"))
    if performed_on is None:
        return _problem("date_required", "calibration date is required")
    if performed_on > today:
        return _problem("date_future", f"calibration date {performed_on.isoformat()} is in the future")
    performed_by = cell_text(values.get("performed_by"))
    certificate = cell_text(values.get("certificate"))
    if not performed_by:
        return _problem("performed_by_required", "performed by is required")
    if not certificate:
        return _problem("certificate_required", "certificate number is required")
    found, left = cell_text(values.get("as_found")).lower(), cell_text(values.get("as_left")).lower()
    if found not in RESULT_VALUES or left not in RESULT_VALUES:
        return _problem("result_values", f"as-found and as-left must each be one of {', '.join(RESULT_VALUES)}")
    return {"performed_on": performed_on, "performed_by": performed_by, "certificate": certificate,
            "as_found": found, "as_left": left, "note": cell_text(values.get("note"))}


def next_cycle_due(result: CalibrationResult, interval_months: int) -> date:
    """The next due date after a passing calibration: performed on + interval."""
    return next_due(result.performed_on, interval_months)


# ------------------------------------------------------------------------------------------- messages


def _device_id_match(text: str, pattern: str) -> re.Match[str] | None:
    return re.search(rf"(?<![A-Za-z0-9])({pattern})(?![A-Za-z0-9])", text)


def find_device_id(text: str, pattern: str) -> str | None:
    """The device id in a message such as "CT-0012 状态" (upper-cased), or None."""
    match = _device_id_match(text, pattern)
    return match.group(1).upper() if match else None


STATUS_WORDS = ("状态", "状况", "查询", "有效期", "校准", "到期", "status", "due", "?", "？")


def status_question(text: str, pattern: str) -> str | None:
    """The device asked about in a message to the bot, or None when the message asks something else.

    "CT-0012 状态", "CT-0012?" or just "CT-0012" ask; "建群 协和医院 CT128 华北" (another plugin's
    command that happens to hold something shaped like a device id) does not.
    """
    words = " ".join(word for word in text.split() if not word.startswith("@"))
    match = _device_id_match(words, pattern)
    if match is None:
        return None
    rest = (words[:match.start()] + words[match.end():]).strip().lower()
    return match.group(1).upper() if not rest or any(word in rest for word in STATUS_WORDS) else None


def is_primary(kind: str) -> bool:
    return kind == PRIMARY_KIND


_TOASTS = Texts({
    "zh_CN": {
        "stale": "这张卡片属于已结束的周期（第 {cycle} 期），请使用最新提醒",
        "wrong_phase": "当前状态（{phase}）不能执行此操作",
        "invalid": "填写有误：{problem}",
        "sent_out": "已记录送检：{vendor}，{sent_on}",
        "form_sent": "已发送校准结果表单，请在消息中填写",
        "passed": "已记录校准结果，证书 {certificate}，下次到期 {due}",
        "quarantined": "已记录：设备停用隔离，已通知设备管理员进行超差评估",
        "assess": "已记录：发现超差，已通知设备管理员评估历史测量结果，评估关闭前设备停用",
        "recorded_wait": "结果已记录，超差评估关闭后恢复使用",
        "not_manager": "只有设备管理员可以关闭超差评估",
        "closed_return": "评估已关闭，设备恢复使用",
        "closed_wait": "评估已关闭，等待合格的校准结果后恢复使用",
        "closed_retire": "评估已关闭，设备退役",
        "duplicate": "已处理",
    },
    "en_US": {
        "stale": "This card belongs to an earlier cycle ({cycle}); use the latest reminder",
        "wrong_phase": "Not possible while the device is {phase}",
        "invalid": "Please check the form: {problem}",
        "sent_out": "Recorded: sent to {vendor} on {sent_on}",
        "form_sent": "The calibration result form was sent to you",
        "passed": "Result recorded, certificate {certificate}, next due {due}",
        "quarantined": "Recorded: device quarantined, the equipment manager will assess earlier results",
        "assess": "Recorded: found out of tolerance; out of service until the manager closes the assessment",
        "recorded_wait": "Result recorded; back in service once the assessment is closed",
        "not_manager": "Only the equipment manager can close the assessment",
        "closed_return": "Assessment closed, the device is back in service",
        "closed_wait": "Assessment closed; back in service after a passing calibration",
        "closed_retire": "Assessment closed, the device is retired",
        "duplicate": "Already done",
    },
})


def toast(locale: str, key: str, **values: Any) -> dict[str, str]:
    """A card-callback answer (``{"toast": text}``) in the organization's language."""
    return {"toast": _TOASTS(key, locale, **values)}


# What people read in toasts, cards and reports; the reasons behind them go to the audit log.
_WORDS = Texts({
    "zh_CN": {
        "vendor_required": "请填写送检单位",
        "sent_on_future": "送检日期不能晚于今天",
        "date_required": "请填写校准日期",
        "date_future": "校准日期不能晚于今天",
        "performed_by_required": "请填写校准机构或人员",
        "certificate_required": "请填写证书编号",
        "result_values": "请选择校准前和校准后的结果",
        "conclusion_required": "请填写评估结论",
        "outcome_values": "请选择处理结果",
        "phase.active": "正常", "phase.overdue": "已超期", "phase.sent_out": "送检中",
        "phase.quarantined": "停用隔离", "phase.paused": "暂停", "phase.retired": "已退役", "phase.not_found": "未登记",
        "result.pass": "合格", "result.adjusted": "调整后合格", "result.fail": "不合格",
        "note.before": "到期前 {days} 天提醒", "note.due": "到期日提醒", "note.escalate": "已超期，升级提醒",
        "note.away": "送检已超过 {days} 天未归（第 {index} 次提醒）",
        "note.assessment": "超差评估尚未关闭（第 {index} 次提醒）",
        "note.quarantine": "校准后仍超差：设备不能使用", "note.assess": "校准前超差：须评估此前的测量结果",
        "report_problem": "部分周期本次未能核对，系统稍后会再试",
    },
    "en_US": {
        "vendor_required": "the vendor is required",
        "sent_on_future": "the date sent cannot be after today",
        "date_required": "the calibration date is required",
        "date_future": "the calibration date cannot be after today",
        "performed_by_required": "who performed the calibration is required",
        "certificate_required": "the certificate number is required",
        "result_values": "choose the as-found and as-left results",
        "conclusion_required": "the conclusion is required",
        "outcome_values": "choose the outcome",
        "phase.active": "in service", "phase.overdue": "overdue", "phase.sent_out": "away for calibration",
        "phase.quarantined": "quarantined", "phase.paused": "paused", "phase.retired": "retired",
        "phase.not_found": "not registered",
        "result.pass": "pass", "result.adjusted": "adjusted", "result.fail": "fail",
        "note.before": "Reminder {days} days before the due date", "note.due": "Due-date reminder",
        "note.escalate": "Overdue: escalated", "note.away": "Away more than {days} days (reminder {index})",
        "note.assessment": "The assessment is still open (reminder {index})",
        "note.quarantine": "Out of tolerance as left: the device cannot be used",
        "note.assess": "Found out of tolerance: earlier measurements must be assessed",
        "report_problem": "Some cycles could not be checked this time; the next run tries again",
    },
})


def words(locale: str, key: str, **values: Any) -> str:
    """One of the scenario's user-facing words or lines in ``locale`` (Chinese when it is unknown)."""
    return _WORDS(key, locale, **values)


def problem_text(problem: Decision, locale: str) -> str:
    """What is wrong with a form, as the person reads it."""
    return words(locale, problem.data["code"])


def phase_name(phase: str, locale: str) -> str:
    return words(locale, f"phase.{phase}")


def result_name(value: str, locale: str) -> str:
    """``pass``/``adjusted``/``fail`` as people read them."""
    return words(locale, f"result.{value}")


def notice_note(decision: Decision, locale: str, settings: DeviceCalibrationSettings) -> str:
    """The line a notice card shows under its facts: which notice it is (its reason goes to the audit log)."""
    step = decision.step or ""
    if decision.action == "away_reminder":
        return words(locale, "note.away", days=settings.sent_out_reminder_days, index=decision.data.get("index", 1))
    if decision.action == "assessment_reminder":
        return words(locale, "note.assessment", index=decision.data.get("index", 1))
    if decision.action == "escalate":
        return words(locale, "note.escalate")
    if step.startswith("before:"):
        return words(locale, "note.before", days=step.split(":", 1)[1])
    return words(locale, "note.due")


def report_problem(locale: str) -> str:
    """The reconciliation report's line when some cycles could not be checked (the errors go to the log)."""
    return words(locale, "report_problem")


# ------------------------------------------------------------------------------------------ audit log


def log_key(workflow_id: str, entry: HistoryEntry) -> str:
    """The audit row's key: the cycle's workflow id, its cycle number and the entry's number."""
    return f"{workflow_id}:{entry.cycle}:{entry.seq}"


def log_row(names: LogFields, key: str, device_id: str, kind: str, entry: HistoryEntry) -> dict[str, Any]:
    """The cells of one audit row in the calibration log table (times in ms since the epoch, as Bitable)."""
    return {names.key: key, names.device_id: device_id, names.kind: kind, names.cycle: entry.cycle,
            names.action: entry.action, names.actor: entry.actor,
            names.at: int(entry.at.timestamp() * 1000), names.reason: entry.reason,
            names.detail: json.dumps(entry.detail, ensure_ascii=False, default=str)}


def registration(facts: KindFacts, kind: ScheduleKind, today: date,
                 at: datetime) -> tuple[Decision, HistoryEntry]:
    """A new cycle's due date and its first audit entry, "registered" (cycle 1, entry 1)."""
    plan = plan_due(facts, kind, today)
    entry = HistoryEntry(at=at, cycle=1, seq=1, action="registered", reason=plan.reason,
                         detail={"due": plan.data["due"]})
    return plan, entry


def registered_state(org: str, device_id: str, kind_name: str, record_id: str | None, facts: KindFacts,
                     kind: ScheduleKind, today: date, at: datetime) -> CycleState:
    """A new cycle's state once registered: due date planned on ``today``, its "registered" entry at ``at``."""
    plan, entry = registration(facts, kind, today, at)
    return CycleState(org=org, device_id=device_id, kind=kind_name, record_id=record_id,
                      info={"device_id": device_id}, phase="active", due=date.fromisoformat(plan.data["due"]),
                      interval_months=plan.data["interval"], last_calibrated=facts.last,
                      last_certificate=facts.certificate, next_seq=entry.seq, history=[entry])


def first_act(state: CycleState, device: DeviceRecord, settings: DeviceCalibrationSettings,
              calendar: WorkCalendar, now: datetime) -> datetime | None:
    """When a cycle just registered from ``device``'s row first acts by itself (a reminder, a status change).

    None when its first workflow task has more to do than plan and sleep (the row pauses or retires it) or
    nothing is ever due: such a cycle starts at once. Otherwise it may start dormant until then.
    """
    if table_intent(device, settings).action != "track":
        return None
    decision = next_action(state.model_copy(update={"info": device.info, "record_id": device.record_id}), now,
                           settings, calendar)
    return None if decision.is_nothing else decision.at
