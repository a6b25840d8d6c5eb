"""Routing is pure: events become actions with the id scheme; every template renders in both locales."""

from __future__ import annotations

from pathlib import Path

import devcal_helpers as h

from engine import actions
from engine.config import parse_config
from engine.plugins import load_plugins
from engine.templates import TemplateEngine
from engine.testing.kit import org_config
from plugins.device_calibration import TEMPLATES
from plugins.device_calibration.routing import route, schedule_specs


def _org(settings: dict[str, object] | None = None) -> object:
    import plugins.device_calibration as device_calibration

    plugins = load_plugins(modules={"device_calibration": device_calibration}, entry_points=False)
    config = parse_config(org_config(plugins=["device_calibration"], settings={"device_calibration": settings or {}}),
                          Path("engine.toml"), plugins.scenarios)
    return config.org("acme")


def test_record_events_signal_with_start_every_kind() -> None:
    org = _org()
    result = route(h.record_event("rec1", "ct-0012", action="record_edited"), org)
    assert result is not None
    keys = [a.key for a in result if isinstance(a, actions.SignalWithStart)]
    assert keys == ["CT-0012", "CT-0012:electrical_safety", "CT-0012:mandatory_verification"]
    first = result[0]
    assert isinstance(first, actions.SignalWithStart)
    assert first.workflow == "device_calibration.CalibrationCycle" and first.signal == "record_changed"


def test_deleted_records_retire_and_unknown_fields_reconcile_one_record() -> None:
    org = _org()
    deleted = route(h.record_event("rec1", "CT-0012", action="record_deleted"), org)
    assert deleted and all(isinstance(a, actions.SignalWorkflow) and a.signal == "retire" for a in deleted)
    # Feishu named the fields by id, and the id of the device-id field is not configured
    unkeyed = route(h.record_event("rec1", None, action="record_edited"), org)
    assert unkeyed and isinstance(unkeyed[0], actions.StartWorkflow)
    assert unkeyed[0].workflow == "device_calibration.Reconcile"
    # with the field id configured, the event is keyed at once
    keyed_org = _org({"bitable": {"field_ids": {"device_id": "fldDEV"}}})
    event = h.record_event("rec1", None, action="record_edited").model_copy(update={"after": {"fldDEV": "CT-7"}})
    keyed = route(event, keyed_org)
    assert keyed and keyed[0].key == "CT-7"  # type: ignore[union-attr]
    other_table = h.record_event("rec1", "CT-1").model_copy(update={"table_id": "tblOther"})
    assert route(other_table, org) is None


def test_cards_become_updates_and_questions_become_queries() -> None:
    org = _org()
    value = {"scenario": "device_calibration", "org": "acme", "device": "CT-0012", "kind": "electrical_safety",
             "cycle": 3, "op": "sent_out"}
    result = route(h.card(value, h.CUSTODIAN, {"vendor": "v"}), org)
    assert result is not None
    update = result[0]
    assert isinstance(update, actions.UpdateWorkflow)
    assert (update.key, update.update, update.arg.cycle, update.arg.values) == (
        "CT-0012:electrical_safety", "sent_out", 3, {"vendor": "v"})
    assert route(h.card({**value, "org": "other"}, h.CUSTODIAN), org) is None
    assert route(h.card({"op": "sent_out"}, h.CUSTODIAN), org) is None
    query = route(h.mention("CT-0012 状态"), org)
    assert query and isinstance(query[0], actions.QueryWorkflow) and query[0].key == "CT-0012"
    assert query[0].reply_missing is not None
    assert route(h.mention("你好"), org) is None


def test_schedules_per_organization() -> None:
    specs = schedule_specs(_org({"digest_cron": "0 8 * * fri"}))
    assert {s.id: s.workflow for s in specs} == {"reconcile": "device_calibration.Reconcile",
                                                 "digest": "device_calibration.WeeklyDigest",
                                                 "monthly_outcome": "device_calibration.MonthlyOutcome"}
    assert [s.cron for s in specs if s.id == "digest"] == ["0 8 * * fri"]
    # every morning of days 1-12: the run itself sends only on the month's first working day
    assert [s.cron for s in specs if s.id == "monthly_outcome"] == ["0 9 1-12 * *"]


def test_every_template_renders_in_both_locales() -> None:
    engine = TemplateEngine({"device_calibration": TEMPLATES})
    assert engine.check_all() == []
    names = engine.names()
    assert len(names) == 11
    card = engine.render_card_dict("device_calibration:reminder.card",
                                   engine.sample_context("device_calibration:reminder.card"), locale="en_US")
    assert card["schema"] == "2.0"
    zh = engine.render("device_calibration:status", engine.sample_context("device_calibration:status"),
                       locale="zh_CN")
    assert "30 天后" in zh and "JL-2025-0456" in zh


def test_example_device_table_parses() -> None:
    import json
    from datetime import date
    from zoneinfo import ZoneInfo

    from engine.feishu.standin.state import State
    from plugins.device_calibration.config import DeviceCalibrationSettings
    from plugins.device_calibration.rules import parse_device, plan_due, table_intent

    # loaded the way `engine dev` seeds the stand-in: its dates are relative to the day it is loaded
    path = Path(__file__).parents[3] / "examples" / "device_calibration" / "devices.json"
    start = date(2027, 2, 5)  # the eve of Spring Festival: the sample must still be useful then
    state = State()
    state.merge_json(json.loads(path.read_text(encoding="utf-8")), today=start)
    settings = DeviceCalibrationSettings()
    table = state.table(settings.bitable.app_token, settings.bitable.table_id)
    assert table is not None and state.table(settings.bitable.app_token, settings.bitable.log_table_id) is not None
    zone = ZoneInfo("Asia/Shanghai")
    devices = [parse_device(rid, record["fields"], settings, zone) for rid, record in table["records"].items()]
    assert len(devices) == 12 and all(d is not None for d in devices)
    dues = [date.fromisoformat(plan_due(d.kinds["calibration"], settings.schedules["calibration"], start).data["due"])
            for d in devices if d is not None]
    assert sum(1 for due in dues if 0 <= (due - start).days <= 31) >= 6  # reminders within the month
    assert any(due < start for due in dues)  # and one overdue device
    assert any(table_intent(d, settings).action == "pause" for d in devices if d is not None)
