"""Routing: Feishu events to actions on this scenario's workflows, and the schedules it asks for.

Pure and fast (the router runs it while Feishu waits): no I/O, only the event, the organization's
settings and the id scheme of :mod:`.models` (``{device_id}`` or ``{device_id}:{kind}``).
"""

from __future__ import annotations

from typing import Any

from engine.sdk import (
    BitableRecordChanged,
    CardAction,
    EngineEvent,
    FeishuEvent,
    MessageReceived,
    ScheduleSpec,
    actions,
    question_locale,
)
from plugins.device_calibration import rules
from plugins.device_calibration.config import PRIMARY_KIND, DeviceCalibrationSettings
from plugins.device_calibration.models import (
    CYCLE_WORKFLOW,
    DIGEST_WORKFLOW,
    OUTCOME_WORKFLOW,
    RECONCILE_WORKFLOW,
    SCENARIO,
    CardInput,
    CycleInput,
    PauseRequest,
    ReconcileInput,
    RecordChanged,
    Retire,
    cell_text,
    cycle_key,
)

CARD_UPDATES = ("sent_out", "result_form", "result", "close_assessment")


def route(event: FeishuEvent, org: Any) -> list[actions.Action] | None:
    settings: DeviceCalibrationSettings = org.settings(SCENARIO)
    if isinstance(event, CardAction):
        return _card(event, org, settings)
    if isinstance(event, BitableRecordChanged):
        return _record(event, org, settings)
    if isinstance(event, MessageReceived):
        return _status_question(event, settings)
    if isinstance(event, EngineEvent):
        return _in_repair(event, settings)
    return None


IN_REPAIR, REPAIRED = ".asset.in_repair", ".asset.repaired"
"""Ends of the engine event types by which another scenario (``repair``) says a device went into repair and
came back: its cycles pause and resume (a device being repaired gets no calibration reminders)."""


def _in_repair(event: EngineEvent, settings: DeviceCalibrationSettings) -> list[actions.Action] | None:
    signal = "pause" if event.event_type.endswith(IN_REPAIR) else \
        "resume" if event.event_type.endswith(REPAIRED) else None
    device_id = str(event.payload.get("asset_id") or "").strip().upper()
    if signal is None or not device_id:
        return None
    reason = f"repair ticket {event.payload.get('ticket') or '?'}"
    # a device without a cycle (not a measuring device) is skipped by the router: no cycle, no signal
    return [actions.SignalWorkflow(scenario=SCENARIO, key=cycle_key(device_id, kind), signal=signal,
                                   arg=PauseRequest(event_id=f"{event.event_id}:{kind}", reason=reason, by="repair"))
            for kind, schedule in settings.schedules.items() if schedule.enabled]


def _card(event: CardAction, org: Any, settings: DeviceCalibrationSettings) -> list[actions.Action] | None:
    value = event.action_value
    if value.get("scenario") != SCENARIO or value.get("op") not in CARD_UPDATES:
        return None
    if value.get("org") not in (None, org.id) or not value.get("device"):
        return None  # a card of another organization's cycle never reaches this one's
    kind = str(value.get("kind") or PRIMARY_KIND)
    cycle = value.get("cycle")
    values = {k: v for k, v in value.items() if k not in ("scenario", "org", "device", "kind", "cycle", "op")}
    values.update(event.form_value or {})
    arg = CardInput(event_id=event.event_id, operator=event.operator_open_id,
                    cycle=int(cycle) if cycle is not None else None, values=values,
                    message_id=event.open_message_id)
    return [actions.UpdateWorkflow(scenario=SCENARIO, key=cycle_key(str(value["device"]).upper(), kind),
                                   update=str(value["op"]), arg=arg, update_id=event.event_id)]


def device_id_of(event: BitableRecordChanged, settings: DeviceCalibrationSettings) -> str:
    """The device id a record event names, looked up by field name or by the configured field id."""
    keys = [settings.fields.device_id]
    if "device_id" in settings.bitable.field_ids:
        keys.append(settings.bitable.field_ids["device_id"])
    for values in (event.after, event.before):
        for key in keys:
            text = cell_text(values.get(key)).upper()
            if text:
                return text
    return ""


def _record(event: BitableRecordChanged, org: Any,
            settings: DeviceCalibrationSettings) -> list[actions.Action] | None:
    bitable = settings.bitable
    if event.app_token != bitable.app_token or event.table_id != bitable.table_id:
        return None
    device_id = device_id_of(event, settings)
    kinds = [name for name, kind in settings.schedules.items() if kind.enabled]
    if not device_id:
        # Feishu named the fields by id and we do not know the id of the device-id field: read the row
        # first, in a one-record reconciliation (a deleted row is caught by the daily reconciliation).
        if event.action == "record_deleted":
            return None
        return [actions.StartWorkflow(
            scenario=SCENARIO, key=f"reconcile:record:{event.record_id}:{event.event_id}",
            workflow=RECONCILE_WORKFLOW,
            args=[ReconcileInput(org=org.id, record_ids=[event.record_id], report=False)])]
    if event.action == "record_deleted":
        return [actions.SignalWorkflow(scenario=SCENARIO, key=cycle_key(device_id, kind), signal="retire",
                                       arg=Retire(event_id=f"{event.event_id}:{kind}", by=event.operator_open_id
                                                  or "system", reason="deleted from the device table"))
                for kind in kinds]
    # every kind: a cycle whose kind the row does not carry ends at once ("not applicable")
    return [actions.SignalWithStart(
        scenario=SCENARIO, key=cycle_key(device_id, kind), workflow=CYCLE_WORKFLOW, signal="record_changed",
        arg=RecordChanged(event_id=event.event_id, record_id=event.record_id, action=event.action,
                          operator=event.operator_open_id),
        start_args=[CycleInput(org=org.id, device_id=device_id, kind=kind, record_id=event.record_id)])
        for kind in kinds]


def _status_question(event: MessageReceived, settings: DeviceCalibrationSettings) -> list[actions.Action] | None:
    if not event.mentions_bot:
        return None
    device_id = rules.status_question(event.text, settings.device_id_pattern)
    if device_id is None:
        return None
    context = {"device_id": device_id, "today": event.create_time.isoformat()}
    locale = question_locale(event.text, device_id)  # the asker's language; None: the device's organization's
    return [actions.QueryWorkflow(
        scenario=SCENARIO, key=cycle_key(device_id, PRIMARY_KIND), query="state",
        reply=actions.Reply(template=f"{SCENARIO}:status", context=context, message_id=event.message_id,
                            locale=locale),
        reply_missing=actions.Reply(template=f"{SCENARIO}:unknown_device", context=context,
                                    message_id=event.message_id, locale=locale))]


def schedule_specs(org: Any) -> list[ScheduleSpec]:
    """A daily reconciliation and a weekly digest per organization (crons from its settings)."""
    settings: DeviceCalibrationSettings = org.settings(SCENARIO)
    args = [{"org": org.id}]
    return [
        # `engine dev` runs it at start, so a freshly seeded device table has its cycles at once
        ScheduleSpec(id="reconcile", cron=settings.reconcile_cron, workflow=RECONCILE_WORKFLOW, args=args,
                     description="read the device table, start/update/retire cycles, report drift",
                     run_on_dev_start=True, setting="reconcile_cron"),
        ScheduleSpec(id="digest", cron=settings.digest_cron, workflow=DIGEST_WORKFLOW, args=args,
                     description="weekly per-department digest: due soon, overdue, out for calibration",
                     setting="digest_cron"),
        # every morning of days 1-12; the run sends only on the month's first working day (its calendar)
        ScheduleSpec(id="monthly_outcome", cron=f"0 {settings.report_hour} 1-12 * *", workflow=OUTCOME_WORKFLOW,
                     args=args, setting="report_hour",
                     description="last month's outcome per site, on the first working day"),
    ]
