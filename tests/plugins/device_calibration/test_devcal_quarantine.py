"""Out of tolerance: quarantine, the manager's assessment (that must be closed), return to service; pause and
resume from the table's status; retire when the row is deleted."""

from __future__ import annotations

from datetime import timedelta

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.rules import add_months
from engine.testing.kit import org_config
from plugins.device_calibration.models import CycleState


def _config() -> dict[str, object]:
    return org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                      extra=h.ORG_EXTRA)


async def _state(env: object, key: str) -> CycleState:
    return CycleState.model_validate(await env.query("device_calibration", key))  # type: ignore[attr-defined]


def _result(value: dict[str, object], day: object, found: str, left: str, cert: str) -> dict[str, object]:
    return {"performed_on": f"{day} +0800", "performed_by": "厂家工程师", "certificate": cert,
            "as_found": found, "as_left": left}


async def test_fail_quarantine_assessment_and_return(scenario_harness: object) -> None:
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = h.local(await env.now()).date()
        h.seed(env.standin, {"rec7": h.device_row("US-0007", last=add_months(today + timedelta(days=5), -12))})
        await env.deliver(h.record_event("rec7", "US-0007"))
        value = {"scenario": "device_calibration", "org": "acme", "device": "US-0007", "kind": "calibration",
                 "cycle": 1}

        # as-left fail: quarantined at once, assessment card to the manager, custodian told
        toast = await env.deliver(h.card({**value, "op": "result"}, h.CUSTODIAN,
                                         _result(value, today, "fail", "fail", "JL-F-1")))
        assert toast.toast and "隔离" in toast.toast
        state = await _state(env, "US-0007")
        assert state.phase == "quarantined" and state.assessment and state.assessment.closed_at is None
        assert h.row(env.standin, "rec7")["状态"] == "停用"
        assert h.row(env.standin, "rec7")["校准状态"] == "隔离待评估"
        assessment_cards = [m for m in env.messages(to=h.MANAGER) if "超差评估" in m.text]
        assert assessment_cards
        assert any("停用隔离" in m.text for m in env.messages(to=h.CUSTODIAN))

        # the open assessment is repeated to the manager every 3 days, no due-date ladder meanwhile
        await env.advance(days=7)
        state = await _state(env, "US-0007")
        assert len(h.history(state, "assessment_reminder")) >= 1
        quarantined_at = h.history(state, "quarantined")[0].at
        assert not [e for e in h.history(state, "remind") + h.history(state, "escalate") if e.at > quarantined_at]

        # only the manager may close it; without a passing result the device stays out of service
        refused = await env.deliver(h.card(h.button(assessment_cards[0], "close_assessment"), h.STRANGER,
                                           {"conclusion": "看过了", "outcome": "return_to_service"}))
        assert refused.toast and "设备管理员" in refused.toast
        closed = await env.deliver(h.card(h.button(assessment_cards[0], "close_assessment"), h.MANAGER, {
            "conclusion": "复核近 3 个月检查，无临床影响", "affected": "2026-08..11 超声检查",
            "outcome": "return_to_service"}))
        assert closed.toast and "等待" in closed.toast
        state = await _state(env, "US-0007")
        assert state.phase == "quarantined" and state.assessment and state.assessment.closed_by == h.MANAGER

        # repaired and recalibrated: pass -> back in service, next cycle
        day = h.local(await env.now()).date()
        ok = await env.deliver(h.card({**value, "op": "result"}, h.MANAGER,
                                      _result(value, day, "pass", "pass", "JL-P-2")))
        assert ok.toast and "JL-P-2" in ok.toast
        state = await _state(env, "US-0007")
        assert (state.cycle, state.phase, state.due) == (2, "active", add_months(day, 12))
        assert h.row(env.standin, "rec7")["状态"] == "合格"
        actions = [e.action for e in state.history]
        assert {"quarantined", "assessment_close_refused", "assessment_closed", "cycle_completed"} <= set(actions)


async def test_found_out_of_tolerance_needs_assessment_before_service(scenario_harness: object) -> None:
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = h.local(await env.now()).date()
        h.seed(env.standin, {"rec8": h.device_row("BP-0008", last=add_months(today, -11))})
        await env.deliver(h.record_event("rec8", "BP-0008"))
        value = {"scenario": "device_calibration", "org": "acme", "device": "BP-0008", "kind": "calibration",
                 "cycle": 1}
        toast = await env.deliver(h.card({**value, "op": "result"}, h.MANAGER,
                                         _result(value, today, "fail", "adjusted", "JL-A-1")))
        assert toast.toast and "评估" in toast.toast
        assert (await _state(env, "BP-0008")).phase == "quarantined"
        closed = await env.deliver(h.card({**value, "op": "close_assessment"}, h.MANAGER,
                                          {"conclusion": "偏差在临床允许范围内", "outcome": "return_to_service"}))
        assert closed.toast and "恢复使用" in closed.toast
        state = await _state(env, "BP-0008")
        assert (state.cycle, state.phase, state.due, state.last_certificate) == (
            2, "active", add_months(today, 12), "JL-A-1")


async def test_pause_resume_and_retire_from_the_table(scenario_harness: object) -> None:
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = h.local(await env.now()).date()
        h.seed(env.standin, {"rec9": h.device_row("ECG-0009", last=add_months(today + timedelta(days=20), -12),
                                                   **{"电气安全检测周期(月)": 12,
                                                      "上次电气安全检测": h.ms(add_months(today, -3))})})
        await env.deliver(h.record_event("rec9", "ECG-0009"))
        safety = await _state(env, "ECG-0009:electrical_safety")
        assert safety.phase == "active" and safety.due == add_months(today, 9)

        # 维修中: paused, no reminders while in repair
        h.row(env.standin, "rec9")["状态"] = "维修中"
        await env.deliver(h.record_event("rec9", "ECG-0009", action="record_edited"))
        state = await _state(env, "ECG-0009")
        assert state.phase == "paused" and state.paused_by_table
        paused_at = h.history(state, "paused")[0].at
        await env.advance(days=15)
        assert not [e for e in h.history(await _state(env, "ECG-0009"), "remind") if e.at > paused_at]

        # back to 合格: resumed, the reminder it missed is caught up (the 30-day one is obsolete by now)
        h.row(env.standin, "rec9")["状态"] = "合格"
        await env.deliver(h.record_event("rec9", "ECG-0009", action="record_edited"))
        await env.advance(days=1)
        state = await _state(env, "ECG-0009")
        assert state.phase == "active"
        assert [e.action for e in state.history].count("resumed") == 1

        # a hand edit of the due date: a new plan for the new date
        new_due = today + timedelta(days=200)
        h.row(env.standin, "rec9")["有效期至"] = h.ms(new_due)
        await env.deliver(h.record_event("rec9", "ECG-0009", action="record_edited"))
        state = await _state(env, "ECG-0009")
        assert state.due == new_due and h.history(state, "due_changed")

        # the row is deleted: every cycle of the device ends cleanly
        del env.standin.state.table(h.APP, h.TABLE)["records"]["rec9"]
        await env.deliver(h.record_event("rec9", "ECG-0009", action="record_deleted"))
        for key in ("ECG-0009", "ECG-0009:electrical_safety"):
            outcome = await env.handle("device_calibration", key).result()
            assert outcome["phase"] == "retired"
