"""A year in the life of a device, through the test kit on the time-skipping server and the Feishu stand-in.

Reminders on working days, overdue and not-to-be-used in Bitable, escalation to the manager and the
department head, sent out and away too long, calibrated with a certificate, the next cycle and its
reminders; and the status reply.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import devcal_helpers as h

import plugins.device_calibration as device_calibration
from engine.rules import WorkCalendar, add_months, all_notices
from engine.testing import moments
from plugins.device_calibration.config import DeviceCalibrationSettings
from plugins.device_calibration.models import CycleState

CAL = WorkCalendar(ZoneInfo("Asia/Shanghai"), holidays=[date(2027, 1, 1)])


async def _state(env: object, key: str = "CT-0012") -> CycleState:
    return CycleState.model_validate(await env.query("device_calibration", key))  # type: ignore[attr-defined]


async def test_a_year_of_a_device(scenario_harness: object) -> None:
    async with scenario_harness({"device_calibration": device_calibration},  # type: ignore[operator]
                                config=_config()) as env:
        today = (await env.begin_at(moments.ordinary_workday())).date()
        due = today + timedelta(days=40)
        last = add_months(due, -12)
        h.seed(env.standin, {"rec1": h.device_row("CT-0012", last=last)})

        # --- registered by a Bitable event: one cycle for calibration, the other kinds do not apply
        await env.deliver(h.record_event("rec1", "CT-0012"))
        state = await _state(env)
        assert (state.phase, state.due, state.cycle) == ("active", due, 1)
        assert h.history(state, "registered")[0].reason.startswith(f"due {due.isoformat()}")
        other = await env.query("device_calibration", "CT-0012:electrical_safety")
        assert other["phase"] == "not_found"

        # --- reminders: 30/7/1 days before, each on the workday before if it falls on a day off
        # (two notices moved onto the same workday collapse into the one nearer the due date)
        plan = [d for d in all_notices(due, DeviceCalibrationSettings().reminders, CAL) if d.action == "remind"]
        until = h.at_local(due - timedelta(days=1), 0)
        await env.advance_to(until)
        state = await _state(env)
        sent = h.history(state, "remind")
        expected = [d for d in plan if d.at is not None and d.at < until]
        assert [e.detail["step"] for e in sent] == [d.step for d in expected]
        assert [e.detail["step"] for e in sent][:2] == ["before:30", "before:7"]
        for entry, planned in zip(sent, expected, strict=True):
            day = h.local(entry.at).date()
            assert CAL.is_workday(day), f"{entry.detail['step']} went out on {day}, a day off"
            assert planned.at is not None and abs(entry.at - planned.at) < timedelta(minutes=1)
            assert h.local(entry.at).hour == 9
        assert all(e.detail["to"] == [h.CUSTODIAN] for e in sent if e.detail["step"] != "due")
        cards = env.messages(to=h.CUSTODIAN)
        assert len(cards) == len(sent) and cards[0].card is not None
        assert "CT-0012" in cards[0].text and "已送检" in cards[0].text
        assert h.row(env.standin, "rec1")["状态"] == "合格"

        # --- the due date passes without a result: overdue, not to be used, custodian and manager told
        await env.advance_to(h.at_local(CAL.next_workday(due), 12))
        state = await _state(env)
        assert state.phase == "overdue"
        assert h.row(env.standin, "rec1")["状态"] == "停用"
        assert h.row(env.standin, "rec1")["校准状态"] == "超期"
        due_notice = next(e for e in h.history(state, "remind") if e.detail["step"] == "due")
        assert sorted(due_notice.detail["to"]) == sorted([h.CUSTODIAN, h.MANAGER])

        # --- escalation: daily to the manager on workdays, weekly to the department head (seven working
        # days on: whatever holidays come, at least five daily ones and one weekly one are due by then)
        await env.advance_to(h.at_local(CAL.add_workdays(CAL.next_workday(due), 7), 12))
        state = await _state(env)
        escalations = h.history(state, "escalate")
        to_manager = [e for e in escalations if e.detail["step"].startswith("after:manager")]
        to_head = [e for e in escalations if e.detail["step"].startswith("after:department_head")]
        assert len(to_manager) >= 5 and len(to_head) >= 1
        for entry in escalations:
            assert CAL.is_workday(h.local(entry.at).date())
        assert to_head[0].detail["to"] == [h.HEAD]
        assert any("升级提醒" in m.text for m in env.messages(to=h.HEAD))

        # --- sent for calibration from the card (vendor and date in its form)
        card = env.messages(to=h.CUSTODIAN)[-1]
        sent_on = h.local(await env.now()).date()
        result = await env.deliver(h.card(h.button(card, "sent_out"), h.CUSTODIAN,
                                          {"vendor": "省计量院", "sent_on": f"{sent_on.isoformat()} +0800"}))
        assert result.toast and "省计量院" in result.toast
        state = await _state(env)
        assert state.phase == "sent_out" and state.sent_out and state.sent_out.by == h.CUSTODIAN
        assert h.row(env.standin, "rec1")["送检单位"] == "省计量院"
        assert h.row(env.standin, "rec1")["校准状态"] == "送检中"
        escalated = len(h.history(state, "escalate"))

        # --- away longer than 14 days: its own reminder (on a working day); no more escalations while out
        await env.advance_to(h.at_local(CAL.add_workdays(CAL.next_workday(sent_on + timedelta(days=14)), 1), 12))
        state = await _state(env)
        assert len(h.history(state, "away_reminder")) == 1
        assert len(h.history(state, "escalate")) == escalated

        # --- calibrated: the button sends the result form, the form records the certificate
        await env.deliver(h.card(h.button(card, "result_form"), h.MANAGER))
        form = [m for m in env.messages(to=h.MANAGER) if "JL" not in m.text and "提交结果" in m.text]
        assert form, "the result form card was not sent to the manager"
        performed = h.local(await env.now()).date() - timedelta(days=1)
        result = await env.deliver(h.card(h.button(form[-1], "result"), h.MANAGER, {
            "performed_on": f"{performed.isoformat()} +0800", "performed_by": "省计量院", "certificate": "JL-2027-0001",
            "as_found": "pass", "as_left": "adjusted"}))
        assert result.toast and "JL-2027-0001" in result.toast
        state = await _state(env)
        next_due = add_months(performed, 12)
        assert (state.cycle, state.phase, state.due, state.last_certificate) == (2, "active", next_due, "JL-2027-0001")
        fields = h.row(env.standin, "rec1")
        assert fields["状态"] == "合格" and fields["证书编号"] == "JL-2027-0001"
        assert fields["有效期至"] == h.ms(next_due) and fields["上次校准日期"] == h.ms(performed)
        assert fields["校准状态"] == "正常"
        assert any("JL-2027-0001" in m.text for m in env.messages(to=h.CUSTODIAN))

        # --- an old card of cycle 1 cannot act on cycle 2
        stale = await env.deliver(h.card(h.button(card, "sent_out"), h.CUSTODIAN, {"vendor": "x"}))
        assert stale.toast and "第 1 期" in stale.toast

        # --- "CT-0012 状态": answered at once from the workflow's state
        await env.deliver(h.mention("CT-0012 状态"))
        replies = [m for m in env.messages() if m.reply_to]
        assert replies and "JL-2027-0001" in replies[-1].text and "合格" in replies[-1].text
        await env.deliver(h.mention("XX-9999 状态"))
        assert "XX-9999" in [m for m in env.messages() if m.reply_to][-1].text

        # --- a year on: the next cycle's 30-day reminder arrives
        await env.advance_to(h.at_local(next_due - timedelta(days=29), 12))
        state = await _state(env)
        assert [e.detail["step"] for e in h.history(state, "remind") if e.cycle == 2] == ["before:30"]

        # --- the audit trail is in Bitable: every decision and confirmation, with who and when
        logged = h.log_rows(env.standin)
        actions = [r["动作"] for r in logged]
        for expected in ("registered", "remind", "status_overdue", "escalate", "sent_out", "result",
                         "cycle_completed"):
            assert expected in actions, expected
        assert any(r["动作"] == "sent_out" and r["操作人"] == h.CUSTODIAN for r in logged)
        assert len({r["日志编号"] for r in logged}) == len(logged)


def _config() -> dict[str, object]:
    from engine.testing.kit import org_config

    return org_config(plugins=["device_calibration"], settings={"device_calibration": h.SETTINGS},
                      extra=h.ORG_EXTRA)
