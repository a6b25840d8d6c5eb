"""The handover scenario's workflows.

- ``handover.Shift`` (``{org}:handover:{department}:{shift}``): one shift change of one department, from
  the form card before the change to the receiver's confirmation, with reminders and escalation ladders.
- ``handover.RotaDriver``: started by the department's schedule before each shift change; resolves the
  rota and starts that shift's ``handover.Shift``.
- ``handover.MonthlyStats``: the monthly statistics card for the medical affairs office.
- ``handover.MonthlyOutcome``: last month's outcome per department (handovers, on time, time to
  acknowledge, unacknowledged) to ``report_recipients`` on the month's first working day.

Card presses are answered at once: an update decides from the workflow's state, queues the Feishu
and Bitable I/O it decided on in ``self.deferred`` and returns its toast; the main loop runs the queue.
Timers run on the organization's business clock (``plan.clock``), so a compressed clock drives the
ladders of a drill.

Privacy: patient content (bed, name, summaries, imaging) is only put in the context of messages to the
giver, the receiver and the department head. Group and office messages get a context built from counts
and statuses (:meth:`Shift._counts`), so even an overridden template cannot show patient data there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    # by their full names: "from <package> import <module>" would load them again for every run, past the
    # sandbox's pass-through (its fresh copy of the package lacks them)
    import plugins.handover.models as m
    import plugins.handover.rules as rules
    from engine.sdk import (
        Decision,
        Deferred,
        SeenEvents,
        activity_options,
        feishu_call,
        load_site_context,
        report_month,
        send_to_each,
    )
    from engine.sdk import feishu as fr
    from plugins.handover.activities import COLLECT_STATS, OUTCOME_ROWS, PLAN_SHIFT, START_SHIFT
    from plugins.handover.config import HandoverSettings

PLUGIN_ACTIVITY_TIMEOUT = timedelta(minutes=5)
# Changes of running workflows' command order (histories recorded before them replay the old way):
PATCH_DEFERRED = "handover-deferred-card-io"  # a card press's I/O runs after its answer, in the main loop
PATCH_SITE_CONTEXT = "handover-site-context"  # the rota and statistics runs load their site's context first

# Toasts are answered straight to the person who pressed, in the site's language (the plan's locale).
TOASTS: dict[str, dict[str, str]] = {
    "zh_CN": {
        "duplicate": "已处理", "not_giver": "只有交班医生可以填写和提交", "not_receiver": "只有接班医生可以确认或提问",
        "submitted_already": "交班已提交，不能再修改", "saved": "已保存 {bed} 床（共 {count} 位患者）",
        "refused": "未保存，请检查填写内容", "need_bed": "未保存：请填写床号",
        "bad_category": "未保存：请从列表中选择患者性质", "bad_severity": "未保存：请从列表中选择病情分级",
        "submitted": "交班已提交给接班医生", "not_submitted": "交班尚未提交",
        "acked_patient": "已确认 {bed} 床", "not_critical": "{bed} 床不是需逐一确认的危重患者",
        "critical_first": "请先逐一确认危重患者（还剩 {count} 位）", "acknowledged": "已确认接班",
        "acknowledged_already": "交班已确认", "asked": "问题已发给交班医生", "empty": "内容不能为空",
        "answered": "回答已发给接班医生", "unknown_question": "找不到这个问题", "closed": "本班交接已结束",
    },
    "en_US": {
        "duplicate": "Already done", "not_giver": "Only the handing-over doctor can fill in and submit",
        "not_receiver": "Only the receiving doctor can confirm or ask",
        "submitted_already": "The handover was submitted and can no longer change",
        "saved": "Saved bed {bed} ({count} patients)", "refused": "Not saved: please check the form",
        "need_bed": "Not saved: please give the bed number",
        "bad_category": "Not saved: please choose the patient category from the list",
        "bad_severity": "Not saved: please choose the illness severity from the list",
        "submitted": "Handover sent to the receiving doctor", "not_submitted": "The handover is not submitted yet",
        "acked_patient": "Bed {bed} confirmed", "not_critical": "Bed {bed} is not a critical patient to confirm",
        "critical_first": "Confirm each critical patient first ({count} left)", "acknowledged": "Handover confirmed",
        "acknowledged_already": "The handover is already confirmed",
        "asked": "Question sent to the handing-over doctor",
        "empty": "Please write something", "answered": "Answer sent to the receiving doctor",
        "unknown_question": "No such question", "closed": "This shift's handover is closed",
    },
}


def _org_of_workflow() -> str:
    return workflow.info().workflow_id.split(":", 1)[0]


@workflow.defn(name="handover.Shift")
class Shift:
    """One department's handover at one shift change: written, received, acknowledged, recorded."""

    @workflow.init
    def __init__(self, plan: m.ShiftPlan, locale: str = "zh_CN") -> None:
        self.plan = plan
        chosen = plan.locale or locale  # the site's, when the plan carries it
        self.locale = chosen if chosen in TOASTS else "zh_CN"
        self.deferred = Deferred()
        self.entries: dict[str, m.PatientEntry] = {}
        self.status: m.Status = "scheduled"
        self.fired: list[str] = []
        self.submitted_at: Any = None
        self.acknowledged_at: Any = None
        self.synthesis = ""
        self.questions: list[m.Question] = []
        self.escalations: list[str] = []
        self.log: list[m.LogItem] = []
        self.seen = SeenEvents()
        self.form_message: str | None = None
        self.receive_message: str | None = None
        self._changed = False

    # ------------------------------------------------------------------------------------------- run

    @workflow.run
    async def run(self, plan: m.ShiftPlan, locale: str = "zh_CN") -> m.ShiftState:
        self._note("planned", detail=f"{plan.giver} -> {plan.receiver} ({plan.rota_source})")
        while True:
            if self.deferred.pending:
                await self.deferred.run()
            now = self._now()
            due, next_at = rules.notices(self.plan, now=now, fired=set(self.fired), submitted_at=self.submitted_at,
                                         acknowledged=self.acknowledged_at is not None,
                                         unacked_critical=len(self._unacked_critical()))
            for decision in due:
                self.fired.append(decision.step or decision.action)
                await self._carry_out(decision)
            if "close" in self.fired or self._finished():
                break
            if due:
                continue  # a notice may have changed what is due next
            self._changed = False
            timeout = self.plan.clock.real_delay(next_at - now) if next_at else None
            with contextlib.suppress(TimeoutError):  # the next notice is due
                await workflow.wait_condition(lambda: self._changed or self.deferred.pending, timeout=timeout)
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.deferred.run()  # what the last presses decided
        if self.status in ("scheduled", "open"):
            self.status = "missing"
        elif self.status == "submitted":
            self.status = "unacknowledged"
        await self._record_handover("final")
        self._note("closed", detail=self.status)
        return self.state()

    def _finished(self) -> bool:
        return self.acknowledged_at is not None and not any(q.answer is None for q in self.questions)

    # -------------------------------------------------------------------------------------- queries

    @workflow.query(name="state")
    def state(self) -> m.ShiftState:
        critical = [e for e in self.entries.values() if e.critical]
        return m.ShiftState(
            department=self.plan.department, shift=self.plan.shift, status=self.status, giver=self.plan.giver,
            receiver=self.plan.receiver, head=self.plan.head, holiday=self.plan.holiday,
            rota_source=self.plan.rota_source, change_at=self.plan.change_at, patients=len(self.entries),
            critical=len(critical), critical_acknowledged=sum(1 for e in critical if e.acked_at),
            complete=rules.handover_complete(self.entries.values(), self.plan), on_time=self._on_time(),
            submitted_at=self.submitted_at, acknowledged_at=self.acknowledged_at,
            synthesis_given=bool(self.synthesis), questions=len(self.questions),
            open_questions=sum(1 for q in self.questions if q.answer is None), escalations=list(self.escalations),
            log=list(self.log))

    @workflow.query(name="plan")
    def plan_query(self) -> m.ShiftPlan:
        """The resolved plan: people, deadlines, ladders (no patient data)."""
        return self.plan

    @workflow.query(name="entries")
    def entries_query(self) -> list[m.PatientEntry]:
        """The patient entries (patient data: for the doctors' own tools, never for group replies)."""
        return list(self.entries.values())

    # -------------------------------------------------------------------------------------- updates

    @workflow.update(name="entry")
    async def entry(self, action: m.CardInput) -> dict[str, Any]:
        """The giver saved one patient entry from the form (several sittings add or update entries)."""
        if (refusal := self._check(action, self.plan.giver)) is not None:
            return refusal
        if self.submitted_at is not None:
            return self._toast("submitted_already")
        entry, why = rules.apply_form(self.entries, action.form, self.plan, self._now())
        if entry is None:
            self._note("entry refused", action.operator, why)
            return self._toast(rules.form_refusal(why))
        self.entries[entry.bed] = entry
        self._note("entry saved", action.operator, f"{len(self.entries)} patients")
        if self.status == "scheduled":
            self.status = "open"
        await self._io(self._refresh_form)
        return self._toast("saved", bed=entry.bed, count=len(self.entries))

    @workflow.update(name="submit")
    async def submit(self, action: m.CardInput) -> dict[str, Any]:
        """The giver submits: records to Bitable, the handover to the receiver, counts to the group."""
        if (refusal := self._check(action, self.plan.giver)) is not None:
            return refusal
        if self.submitted_at is not None:
            return self._toast("submitted_already")
        if action.form.get("bed"):
            # the form's own fields count as a last entry when submitted together
            entry, why = rules.apply_form(self.entries, action.form, self.plan, self._now())
            if entry is None:
                self._note("submission refused", action.operator, why)
                return self._toast(rules.form_refusal(why))
            self.entries[entry.bed] = entry
        self.submitted_at = self._now()
        self.status = "submitted"
        self._note("submitted", action.operator, f"{len(self.entries)} patients, on time: {self._on_time()}")
        self._changed = True
        await self._io(self._record_patients, "submit")
        await self._io(self._record_handover, "submit")
        await self._io(self._send_receive)
        await self._io(self._refresh_form)
        await self._io(self._group, "submitted")
        return self._toast("submitted")

    @workflow.update(name="ack_patient")
    async def ack_patient(self, action: m.CardInput) -> dict[str, Any]:
        """The receiver confirms one critical patient."""
        if (refusal := self._check(action, self.plan.receiver)) is not None:
            return refusal
        bed = str(action.value.get("bed", ""))
        entry = self.entries.get(bed)
        if self.submitted_at is None:
            return self._toast("not_submitted")
        if entry is None or not entry.critical:
            return self._toast("not_critical", bed=bed)
        if entry.acked_at is None:
            entry.acked_at, entry.acked_by = self._now(), action.operator
            self._note("critical patient confirmed", action.operator)
            self._changed = True
            await self._io(self._record_patients, f"ack-{bed}", only=[bed])
            await self._io(self._refresh_receive)
        return self._toast("acked_patient", bed=bed)

    @workflow.update(name="acknowledge")
    async def acknowledge(self, action: m.CardInput) -> dict[str, Any]:
        """The receiver confirms the whole handover (the synthesis step), after every critical patient."""
        if (refusal := self._check(action, self.plan.receiver)) is not None:
            return refusal
        if self.submitted_at is None:
            return self._toast("not_submitted")
        if self.acknowledged_at is not None:
            return self._toast("acknowledged_already")
        left = self._unacked_critical()
        if left:
            self._note("confirmation refused", action.operator, f"{len(left)} critical patients unconfirmed")
            return self._toast("critical_first", count=len(left))
        self.acknowledged_at = self._now()
        self.synthesis = str(action.form.get("synthesis") or "").strip()[:rules.MAX_TEXT]
        self.status = "acknowledged"
        self._note("acknowledged", action.operator, "with synthesis" if self.synthesis else "")
        self._changed = True
        await self._io(self._record_patients, "ack")
        await self._io(self._record_handover, "ack")
        await self._io(self._refresh_receive)
        await self._io(self._send, self.plan.giver, "acknowledged", self._counts(), "acknowledged")
        await self._io(self._group, "acknowledged")
        return self._toast("acknowledged")

    @workflow.update(name="ask")
    async def ask(self, action: m.CardInput) -> dict[str, Any]:
        """The receiver asks the giver a question (the answer comes back to the receiver)."""
        if (refusal := self._check(action, self.plan.receiver)) is not None:
            return refusal
        text = str(action.form.get("question") or "").strip()[:rules.MAX_TEXT]
        if not text:
            return self._toast("empty")
        question = m.Question(id=f"q{len(self.questions) + 1}", text=text, asked_at=self._now())
        self.questions.append(question)
        self._note("question asked", action.operator, question.id)
        self._changed = True
        await self._io(self._send, self.plan.giver, "question.card",
                       {**self._counts(), "question_id": question.id, "question": text}, f"question-{question.id}")
        return self._toast("asked")

    @workflow.update(name="answer")
    async def answer(self, action: m.CardInput) -> dict[str, Any]:
        """The giver answers a question; the answer goes to the receiver."""
        if (refusal := self._check(action, self.plan.giver)) is not None:
            return refusal
        question = next((q for q in self.questions if q.id == action.value.get("question")), None)
        if question is None:
            return self._toast("unknown_question")
        text = str(action.form.get("answer") or "").strip()[:rules.MAX_TEXT]
        if not text:
            return self._toast("empty")
        question.answer, question.answered_at = text, self._now()
        self._note("question answered", action.operator, question.id)
        self._changed = True
        await self._io(self._send, self.plan.receiver, "answer",
                       {**self._counts(), "question": question.text, "answer": text}, f"answer-{question.id}")
        return self._toast("answered")

    # --------------------------------------------------------------------------------------- helpers

    def _check(self, action: m.CardInput, allowed: str) -> dict[str, Any] | None:
        """Absorb duplicates and refuse anyone but the expected doctor; ``None`` lets the action through."""
        if not self.seen.first_time(action.event_id):
            return self._toast("duplicate")
        if "close" in self.fired:
            return self._toast("closed")
        if action.operator != allowed:
            self._note("refused: not the expected doctor", action.operator)
            return self._toast("not_giver" if allowed == self.plan.giver else "not_receiver")
        return None

    async def _io(self, work: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Queue a press's I/O for the main loop, so the press is answered at once; histories recorded
        before that change ran it in the update itself, and replay that way."""
        if workflow.patched(PATCH_DEFERRED):
            self.deferred.add(self._surfacing, work, *args, **kwargs)
        else:
            await work(*args, **kwargs)

    async def _surfacing(self, work: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Run a press's queued I/O; one that still fails after the engine's retries is logged and kept in
        the shift's log (the press was answered long ago), and the rest of the shift goes on."""
        try:
            await work(*args, **kwargs)
        except ActivityError as error:
            cause = type(error.cause).__name__ if error.cause else type(error).__name__
            workflow.logger.error("handover %s: %s failed after retries (%s)", self._wid(), work.__name__, cause)
            self._note("delivery failed", detail=f"{work.__name__.lstrip('_')}: {cause}")

    def _now(self) -> datetime:
        """The organization's business time (the real one unless its clock is compressed for a drill)."""
        return self.plan.clock.now(workflow.now())

    def _toast(self, key: str, **values: Any) -> dict[str, Any]:
        return {"toast": TOASTS[self.locale][key].format(**values)}

    def _note(self, what: str, by: str | None = None, detail: str = "") -> None:
        self.log.append(m.LogItem(at=self._now(), what=what, by=by, detail=detail))

    def _on_time(self) -> bool | None:
        return None if self.submitted_at is None else self.submitted_at <= self.plan.change_at

    def _unacked_critical(self) -> list[m.PatientEntry]:
        return [e for e in self.entries.values() if e.critical and e.acked_at is None]

    def _wid(self) -> str:
        return workflow.info().workflow_id

    def _counts(self) -> dict[str, Any]:
        """Context without patient content: what group chats and the office may see."""
        entries = list(self.entries.values())
        return {
            "key": self.plan.key, "department": self.plan.department_name, "shift": self.plan.shift,
            "change_at": self.plan.change_at,
            "status": self.status, "giver": self.plan.giver, "receiver": self.plan.receiver,
            "patients": len(entries), "critical": sum(1 for e in entries if e.critical),
            "critical_unconfirmed": len(self._unacked_critical()), "on_time": self._on_time(),
            "holiday": self.plan.holiday, "escalations": len(self.escalations),
        }

    def _detail_context(self) -> dict[str, Any]:
        """Context with patient content: only for the giver, the receiver and the department head."""
        labels = {c.id: {"zh": c.zh, "en": c.en} for c in self.plan.categories}
        entries = []
        for entry in sorted(self.entries.values(), key=lambda e: (not e.critical, e.bed)):
            data = entry.model_dump(mode="json")
            data["category_label"] = labels.get(entry.category, {"zh": entry.category, "en": entry.category})
            data["missing"] = rules.missing_fields(entry, self.plan)
            entries.append(data)
        return {**self._counts(), "structure": self.plan.structure,
                "fields": self.plan.fields, "entries": entries, "synthesis": self.synthesis,
                "acknowledged": self.acknowledged_at is not None, "submitted": self.submitted_at is not None,
                "categories": [c.model_dump() for c in self.plan.categories], "severities": list(m.SEVERITIES)}

    async def _send(self, open_id: str, template: str, context: dict[str, Any], step: str) -> fr.SentMessage:
        return await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=self.plan.org, to=fr.Recipient(id=open_id), template=f"{m.SCENARIO}:{template}",
            context=context, idempotency_key=f"{self._wid()}:{step}", locale=self.plan.locale,
            timezone=self.plan.timezone),
            result_type=fr.SentMessage)

    async def _send_receive(self) -> None:
        """The handover, with its patients, to the receiver (the card they confirm on)."""
        sent = await self._send(self.plan.receiver, "receive.card", self._detail_context(), "receive")
        self.receive_message = sent.message_id

    async def _group(self, event: str) -> None:
        """Counts and status to the department group (never patient content)."""
        if not self.plan.group_chat:
            return
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=self.plan.org, to=fr.Recipient(id_type="chat_id", id=self.plan.group_chat),
            template=f"{m.SCENARIO}:group_status", context={**self._counts(), "event": event},
            idempotency_key=f"{self._wid()}:group-{event}", locale=self.plan.locale,
            timezone=self.plan.timezone), result_type=fr.SentMessage)

    async def _refresh_form(self) -> None:
        if self.form_message:
            await feishu_call(fr.UPDATE_CARD, fr.UpdateCard(
                org=self.plan.org, message_id=self.form_message, template=f"{m.SCENARIO}:form.card",
                context=self._detail_context(), locale=self.plan.locale,
            timezone=self.plan.timezone))

    async def _refresh_receive(self) -> None:
        if self.receive_message:
            await feishu_call(fr.UPDATE_CARD, fr.UpdateCard(
                org=self.plan.org, message_id=self.receive_message, template=f"{m.SCENARIO}:receive.card",
                context=self._detail_context(), locale=self.plan.locale,
            timezone=self.plan.timezone))

    async def _carry_out(self, decision: Decision) -> None:
        """Act on one due notice from :func:`rules.notices`."""
        step = decision.step or decision.action
        self._note(decision.action, detail=decision.reason)
        if decision.action == "form":
            if self.status == "scheduled":
                self.status = "open"
            sent = await self._send(self.plan.giver, "form.card", self._detail_context(), "form")
            self.form_message = sent.message_id
            return
        if decision.action == "close":
            return
        to = decision.data["to"]
        ladder = decision.data["ladder"]
        kind = "missing" if ladder.startswith("missing") else ladder
        context = {**self._counts(), "kind": kind}
        if decision.action == "escalate":
            self.escalations.append(step)
        if to in ("giver", "receiver"):
            await self._send(getattr(self.plan, to), "reminder", context, step)
        elif to == "head":
            # the head may see which critical patients wait: beds only, in a direct message
            beds = [e.bed for e in self._unacked_critical()]
            await self._send(self.plan.head, "escalation", {**context, "beds": beds}, step)
        else:
            for index, person in enumerate(self.plan.medical_affairs):
                await self._send(person, "escalation_office", context, f"{step}-{index}")
        if decision.action == "escalate":
            if kind == "missing" and step == "missing-1":
                await self._group("missing")
            await self._record_handover(step)

    # --------------------------------------------------------------------------------------- bitable

    def _handover_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            m.H_KEY: self.plan.key, m.H_DEPARTMENT: self.plan.department, m.H_SITE: self.plan.site or "",
            m.H_SHIFT: self.plan.shift, m.H_MONTH: self.plan.shift[:7], m.H_GIVER: self.plan.giver,
            m.H_RECEIVER: self.plan.receiver, m.H_STATUS: self.status, m.H_PATIENTS: len(self.entries),
            m.H_CRITICAL: sum(1 for e in self.entries.values() if e.critical),
            m.H_ESCALATIONS: len(self.escalations), m.H_HOLIDAY: self.plan.holiday,
            m.H_ON_TIME: bool(self._on_time()),
            m.H_COMPLETE: self.submitted_at is not None and rules.handover_complete(self.entries.values(), self.plan),
        }
        if self.submitted_at is not None:
            fields[m.H_SUBMITTED] = int(self.submitted_at.timestamp() * 1000)
        if self.acknowledged_at is not None and self.submitted_at is not None:
            fields[m.H_ACKED] = int(self.acknowledged_at.timestamp() * 1000)
            waited = self.acknowledged_at - rules.ack_base(self.plan, self.submitted_at)
            fields[m.H_ACK_MINUTES] = round(max(waited.total_seconds(), 0) / 60, 1)
        return fields

    async def _record_handover(self, step: str) -> None:
        table = self.plan.handovers_table
        if table is None:
            return
        await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
            org=self.plan.org, app_token=table.app_token, table_id=table.table_id, key_field=m.H_KEY,
            records=[self._handover_fields()], client_token=f"{self._wid()}:handover:{step}"),
            result_type=fr.UpsertResult)

    async def _record_patients(self, step: str, only: list[str] | None = None) -> None:
        """One record per patient entry, in the (restricted) patients table."""
        table = self.plan.patients_table
        if table is None or not self.entries:
            return
        records = []
        for entry in self.entries.values():
            if only is not None and entry.bed not in only:
                continue
            record: dict[str, Any] = {
                m.P_KEY: f"{self.plan.key}:{entry.bed}", m.P_HANDOVER: self.plan.key,
                m.P_DEPARTMENT: self.plan.department, m.P_SHIFT: self.plan.shift, m.P_BED: entry.bed,
                m.P_NAME: entry.name, m.P_CATEGORY: entry.category, m.P_SEVERITY: entry.severity,
                m.P_IMAGING: "\n".join(entry.imaging), m.P_GIVER: self.plan.giver,
                m.P_RECEIVER: self.plan.receiver, m.P_CRITICAL: entry.critical,
            }
            for field in self.plan.fields:
                record[m.P_FIELD_LABELS.get(field, field)] = entry.fields.get(field, "")
            acked = entry.acked_at or self.acknowledged_at
            if acked is not None:
                record[m.P_ACKED] = int(acked.timestamp() * 1000)
            records.append(record)
        await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
            org=self.plan.org, app_token=table.app_token, table_id=table.table_id, key_field=m.P_KEY,
            records=records, client_token=f"{self._wid()}:patients:{step}"), result_type=fr.UpsertResult)


@workflow.defn(name="handover.RotaDriver")
class RotaDriver:
    """Started by a department's schedule before a shift change: plan the shift, start its workflow."""

    @workflow.run
    async def run(self, request: m.RotaRequest, locale: str = "zh_CN") -> dict[str, Any]:
        context = None
        as_of = workflow.now()
        if workflow.patched(PATCH_SITE_CONTEXT):
            # the site's effective settings, zone, locale, calendar and business clock
            context = await load_site_context(m.SCENARIO, request.site, org=request.org)
            locale, as_of = context.locale, context.clock.now(as_of)
        result: m.PlanResult = await workflow.execute_activity(
            PLAN_SHIFT, m.PlanRequest(org=request.org, department=request.department, change=request.change,
                                      as_of=as_of, context=context),
            **activity_options(timedelta(minutes=1), schedule_to_close=PLUGIN_ACTIVITY_TIMEOUT, retry=None),
            result_type=m.PlanResult)
        if result.plan is None:
            return {"started": None, "reason": result.reason}
        started: m.ShiftStarted = await workflow.execute_activity(
            START_SHIFT, m.StartShift(plan=result.plan, locale=locale),
            **activity_options(timedelta(minutes=1), schedule_to_close=PLUGIN_ACTIVITY_TIMEOUT, retry=None),
            result_type=m.ShiftStarted)
        if not started.started:
            # it already ran to its end: a late or repeated schedule run changes nothing
            return {"started": None, "reason": f"{started.workflow_id} already ran", "workflow_id": started.workflow_id}
        return {"started": started.workflow_id, "reason": result.reason}


@workflow.defn(name="handover.MonthlyStats")
class MonthlyStats:
    """The month's numbers per department and site, as a card to the medical affairs office."""

    @workflow.run
    async def run(self, org: str, recipients: list[str], month: str | None = None) -> m.StatsReport:
        as_of, locale = workflow.now(), None
        if workflow.patched(PATCH_SITE_CONTEXT):
            group = await load_site_context(m.SCENARIO, org=org)  # the group's: the office is the group's
            as_of, locale = group.clock.now(as_of), group.locale
        report: m.StatsReport = await workflow.execute_activity(
            COLLECT_STATS, m.StatsRequest(org=org, month=month, as_of=as_of),
            **activity_options(timedelta(minutes=2), schedule_to_close=PLUGIN_ACTIVITY_TIMEOUT, retry=None),
            result_type=m.StatsReport)
        context = {"month": report.month, "rows": [row.model_dump() for row in report.rows]}
        for index, person in enumerate(recipients):
            await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
                org=org, to=fr.Recipient(id=person), template=f"{m.SCENARIO}:stats.card", context=context,
                idempotency_key=f"{workflow.info().workflow_id}:stats:{report.month}:{index}", locale=locale),
                result_type=fr.SentMessage)
        return report


@workflow.defn(name="handover.MonthlyOutcome")
class MonthlyOutcome:
    """Last month's outcome per department, sent on the first working day of the month.

    Started every morning of the month's first twelve days by a schedule; a run that is not on the first
    working day ends without sending (the calendar knows the holidays a cron cannot). Result: cards sent.
    """

    @workflow.run
    async def run(self, params: m.OutcomeInput) -> int:
        context = await load_site_context(m.SCENARIO, org=params.org)
        settings = context.settings_as(HandoverSettings)
        calendar = context.calendar()
        report = report_month(context.clock.now(workflow.now()), calendar)
        if report is None:
            return 0
        month = report.month
        rows: list[m.OutcomeRow] = await workflow.execute_activity(
            OUTCOME_ROWS, m.OutcomeRequest(org=params.org, month=month),
            **activity_options(timedelta(minutes=2), schedule_to_close=PLUGIN_ACTIVITY_TIMEOUT),
            result_type=list[m.OutcomeRow])
        sent = 0
        for department, recipients in sorted(settings.report_recipients.items()):
            mine = [r for r in rows if not department or r.department == department]
            if not mine:
                continue
            card = {"month": month, "department": mine[0].name if department else "",
                    "rows": [r.model_dump() for r in mine],
                    "overtime_hours": rules.overtime_estimate_hours(mine, settings.overtime_saved_minutes),
                    "overtime_minutes": settings.overtime_saved_minutes}
            sent += await send_to_each(params.org, recipients, f"{m.SCENARIO}:outcome.card", card,
                                       locale=context.locale,
                                       key=f"{workflow.info().workflow_id}:outcome:{month}:{department}")
        return sent


WORKFLOWS = [Shift, RotaDriver, MonthlyStats, MonthlyOutcome]
