"""Out of tolerance: quarantine, the manager's assessment (that must be closed), return to service; pause and
resume from the table's status; retire when the row is deleted."""

from __future__ import annotations

from datetime import timedelta

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.rules import add_months
from engine.testing import moments
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
        today = (await env.begin_at(moments.ordinary_workday())).date()
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
        today = (await env.begin_at(moments.ordinary_workday())).date()
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
        today = (await env.begin_at(moments.ordinary_workday())).date()
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


async def test_repaired_device_found_out_of_tolerance_returns_to_service(scenario_harness: object) -> None:
    # regression: quarantined, assessment closed, then a recalibration found out of tolerance but left
    # in tolerance (the usual result after a repair) left the device quarantined with nothing scheduled
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec5": h.device_row("US-0005", last=add_months(today + timedelta(days=5), -12))})
        await env.deliver(h.record_event("rec5", "US-0005"))
        value = {"scenario": "device_calibration", "org": "acme", "device": "US-0005", "kind": "calibration",
                 "cycle": 1}
        await env.deliver(h.card({**value, "op": "result"}, h.MANAGER, _result(value, today, "fail", "fail", "F-1")))
        await env.deliver(h.card({**value, "op": "close_assessment"}, h.MANAGER,
                                 {"conclusion": "无临床影响", "outcome": "return_to_service"}))
        repaired = await env.deliver(h.card({**value, "op": "result"}, h.MANAGER,
                                            _result(value, today, "fail", "adjusted", "JL-R-2")))
        assert repaired.toast and "JL-R-2" in repaired.toast
        state = await _state(env, "US-0005")
        assert (state.cycle, state.phase, state.last_certificate) == (2, "active", "JL-R-2")
        assert h.row(env.standin, "rec5")["状态"] == "合格"


async def test_retired_by_the_assessment_stays_retired(scenario_harness: object) -> None:
    # regression: the retire outcome left 停用 in the status column, so the next reconciliation (or any
    # edit of the row) started a new cycle for a device the manager had retired
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec6": h.device_row("US-0006", last=add_months(today + timedelta(days=5), -12))})
        await env.deliver(h.record_event("rec6", "US-0006"))
        value = {"scenario": "device_calibration", "org": "acme", "device": "US-0006", "kind": "calibration",
                 "cycle": 1}
        await env.deliver(h.card({**value, "op": "result"}, h.MANAGER, _result(value, today, "fail", "fail", "F-1")))
        closed = await env.deliver(h.card({**value, "op": "close_assessment"}, h.MANAGER,
                                          {"conclusion": "无法修复，报废", "outcome": "retire"}))
        assert closed.toast
        outcome = await env.handle("device_calibration", "US-0006").result()
        assert outcome["phase"] == "retired"
        assert h.row(env.standin, "rec6")["状态"] == "报废"
        # an edit of the row afterwards: the row says retired, so whatever looks at it ends at once
        sent = len(env.messages())
        await env.deliver(h.record_event("rec6", "US-0006", action="record_edited"))
        state = await _state(env, "US-0006")
        assert state.phase == "retired" and h.history(state, "retired")[-1].reason.startswith("status")
        await env.advance(days=10)
        assert len(env.messages()) == sent


async def test_resumed_while_overdue_is_out_of_service_again(scenario_harness: object) -> None:
    # regression: paused (维修中) while overdue, then back to 合格 by hand: the row kept 合格
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec4": h.device_row("ECG-0004", last=add_months(today - timedelta(days=3), -12))})
        await env.deliver(h.record_event("rec4", "ECG-0004"))
        await env.advance(days=1)
        assert (await _state(env, "ECG-0004")).phase == "overdue"
        assert h.row(env.standin, "rec4")["状态"] == "停用"
        for status in ("维修中", "合格"):
            h.row(env.standin, "rec4")["状态"] = status
            await env.deliver(h.record_event("rec4", "ECG-0004", action="record_edited"))
        state = await _state(env, "ECG-0004")
        assert state.phase == "overdue" and h.row(env.standin, "rec4")["状态"] == "停用"


async def test_a_row_without_dates_keeps_its_registration_day(scenario_harness: object) -> None:
    # regression: a row with neither a last nor a due date was "due today" again at every re-read, so the
    # ladder started over each day and never reached the department head
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec3": h.device_row("PIP-0003", last=None)})
        await env.deliver(h.record_event("rec3", "PIP-0003"))
        assert (await _state(env, "PIP-0003")).due == today
        await env.advance(days=3)
        await env.deliver(h.record_event("rec3", "PIP-0003", action="record_edited"))
        state = await _state(env, "PIP-0003")
        assert state.due == today and not h.history(state, "due_changed")


async def test_a_hospitals_own_ladder_applies_to_its_devices(scenario_harness: object) -> None:
    # regression: site_overridable keys were validated but every cycle ran on the group's settings
    config = org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                        sites={"hosp_b": {"name": "B院", "settings": {"device_calibration": {
                            "reminders": {"before_days": [45, 7]}}}}}, extra=h.ORG_EXTRA)
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=config) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        due = today + timedelta(days=40)
        h.seed(env.standin, {"recA": h.device_row("CT-0101", last=add_months(due, -12)),
                             "recB": h.device_row("CT-0102", last=add_months(due, -12), 院区="hosp_b")})
        await env.deliver(h.record_event("recA", "CT-0101"))
        await env.deliver(h.record_event("recB", "CT-0102"))
        await env.advance(days=3)  # past a weekend, if any: the catch-up goes on a working day
        group = await _state(env, "CT-0101")
        hospital = await _state(env, "CT-0102")
        assert hospital.info.site == "hosp_b"
        assert [e.detail["step"] for e in h.history(hospital, "remind")] == ["before:45"]
        assert h.history(group, "remind") == []  # the group's first reminder is 30 days before


async def test_a_passing_calibration_does_not_clear_another_kinds_stop(scenario_harness: object) -> None:
    # regression: every kind wrote the shared status column, the last write won: a passing calibration
    # put 合格 on a device whose electrical safety test was overdue
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        h.seed(env.standin, {"rec2": h.device_row(
            "DR-0002", last=add_months(today + timedelta(days=5), -12),
            **{"电气安全检测周期(月)": 12, "上次电气安全检测": h.ms(add_months(today - timedelta(days=3), -12))})})
        await env.deliver(h.record_event("rec2", "DR-0002"))
        await env.advance(days=1)
        assert (await _state(env, "DR-0002:electrical_safety")).phase == "overdue"
        assert h.row(env.standin, "rec2")["状态"] == "停用"
        value = {"scenario": "device_calibration", "org": "acme", "device": "DR-0002", "kind": "calibration",
                 "cycle": 1}
        day = h.local(await env.now()).date()
        await env.deliver(h.card({**value, "op": "result"}, h.MANAGER, _result(value, day, "pass", "pass", "JL-9")))
        assert (await _state(env, "DR-0002")).cycle == 2
        fields = h.row(env.standin, "rec2")
        assert (fields["校准状态"], fields["电气安全状态"], fields["状态"]) == ("正常", "超期", "停用")
