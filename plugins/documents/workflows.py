"""Temporal workflow of documents: one Round per round headquarters sends.

``documents.Round`` (ID ``{org}:documents:{round id}``) sends each hospital's responsible people a card
(a document to read and acknowledge, or material to upload) in the hospital's language, reminds them on
the hospital's working days before and after the deadline (the SDK's ladder), tells the hospital's head
when the hospital is late, keeps a status card at headquarters filled in as hospitals answer, writes one
answers row per hospital, and sends headquarters a summary when all are in or when the deadline has
passed. Card presses are updates that decide and answer at once; their writes and messages follow in the
main loop (``engine.sdk.Deferred``). Timers run on the organization's business clock.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.sdk import (
        BusinessClock,
        Decision,
        Deferred,
        Refusal,
        SeenEvents,
        SiteContext,
        WorkCalendar,
        activity_options,
        feishu_call,
        workflow_org,
    )
    from engine.sdk import feishu as fr

from . import rules
from .bitable import answer_fields
from .config import DocumentsSettings
from .models import (
    AnswerRequest,
    FileNote,
    HistoryEntry,
    Hospital,
    Plan,
    PlanRequest,
    Round,
    RoundInput,
    UploadedFile,
)

SCENARIO = "documents"
HISTORY_KEPT = 200
OWN_ACTIVITY = activity_options(timedelta(seconds=30))
TELL_REFUSED = "documents-tell-refused"  # a refused round's sender is told why
ROW_ID = "documents-row-id"  # a rounds-table row without a round id gets the one the engine gave it
SKIP_PAST = "documents-skip-past"  # a round sent late skips reminders whose day has passed (the card is one)


class Refused(Refusal):
    """A press the round refuses; its message is what the person is told, in their language."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="DocumentsRefused")


@workflow.defn(name="documents.Round")
class RoundWorkflow:
    """One round: the cards out, the answers in, reminders and escalations, status and summary."""

    @workflow.init
    def __init__(self, params: RoundInput) -> None:
        self.r = Round(round_id=params.round_id, kind=params.kind, title=params.title, body=params.body,
                       link=params.link, deadline=params.deadline, sender_open_id=params.sender_open_id)
        self.seen = SeenEvents([])
        self.deferred = Deferred()
        self.group: SiteContext | None = None
        self.contexts: dict[str, SiteContext] = {}
        self.settings = DocumentsSettings()
        self.clock = BusinessClock()
        self.loaded = False
        self.version = 0  # bumped on every change the timers must re-plan for

    # ------------------------------------------------------------------------------------------ run

    @workflow.run
    async def run(self, params: RoundInput) -> str:
        plan = await workflow.execute_activity(
            "documents.plan", PlanRequest(org=workflow_org(), round=params), result_type=Plan, **OWN_ACTIVITY)
        if plan.problem or plan.group is None:
            self.r.status = "refused"
            self._remember("refused", "", "", plan.problem or "no context")
            self.loaded = True
            sender = plan.round.sender_open_id
            if plan.group is not None and sender and workflow.patched(TELL_REFUSED):
                self.group = plan.group
                self.r.title = plan.round.title
                await self._send(sender, "documents:refused", {**self._round_context(), "why": plan.problem_kind},
                                 "refused", plan.group.locale, None)
            return "refused"
        self._take(plan)
        if params.record_id and not plan.row_has_id and workflow.patched(ROW_ID):
            await self._write_round_id(params.record_id)
        for h in self.r.hospitals:
            await self._request(h, "new", "new")
        for open_id in self._hq():
            await self._send_status_card(open_id)
        await self._write_rows(self.r.hospitals)
        while self.r.status == "open":
            await self._wait_and_act()
        await self.deferred.run()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self.deferred.run()
        return self.r.status

    def _take(self, plan: Plan) -> None:
        assert plan.group is not None
        given, self.group = plan.round, plan.group
        self.settings = plan.group.settings_as(DocumentsSettings)
        self.clock = plan.group.clock
        r = self.r
        r.kind, r.title, r.body, r.link = given.kind, given.title, given.body, given.link
        r.deadline, r.sender_open_id = given.deadline, given.sender_open_id
        for context in plan.hospitals:
            site = context.site or ""
            settings = context.settings_as(DocumentsSettings)
            self.contexts[site] = context
            r.hospitals.append(Hospital(site=site, name=context.site_name or site, locale=context.locale,
                                        timezone=context.timezone, responsible=list(settings.responsible_open_ids),
                                        head=settings.head_open_id))
        now = self._now()
        assert r.deadline is not None
        calendar = plan.group.calendar()
        r.status, r.sent_at = "open", now
        r.summary_at = rules.summary_moment(r.deadline, calendar, self.settings.ladder.send_at)
        if workflow.patched(SKIP_PAST):
            for h in r.hospitals:
                context = self.contexts[h.site]
                h.fired = rules.passed_notices(r.deadline, now, context.settings_as(DocumentsSettings).ladder,
                                               context.calendar())
        self._remember("sent", "", r.sender_open_id,
                       f"{r.kind} round to {', '.join(h.site for h in r.hospitals)}; deadline {r.deadline}")
        self.loaded = True

    def _now(self) -> datetime:
        """The organization's business time (the real one unless its clock is compressed for a drill)."""
        return self.clock.now(workflow.now())

    def _calendar(self, site: str) -> WorkCalendar:
        return self.contexts[site].calendar()

    def _hq(self) -> list[str]:
        people = [*self.settings.hq_open_ids, self.r.sender_open_id]
        return [p for i, p in enumerate(people) if p and p not in people[:i]]

    # ---------------------------------------------------------------------------------------- timers

    def _next_timer(self) -> tuple[datetime, str, str, Decision | None] | None:
        """The earliest of: a hospital's next notice, the summary at the deadline, the round's close."""
        r, now = self.r, self._now()
        assert r.deadline is not None and self.group is not None
        timers: list[tuple[datetime, str, str, Decision | None]] = []
        for h in r.hospitals:
            ladder = self.contexts[h.site].settings_as(DocumentsSettings).ladder
            decision = rules.next_hospital_notice(h, r.deadline, now, ladder, self._calendar(h.site))
            if not decision.is_nothing and decision.at is not None:
                timers.append((decision.at, "notice", h.site, decision))
        if not r.summarized and r.summary_at is not None:
            timers.append((r.summary_at, "summary", "", None))
        timers.append((rules.close_moment(r.deadline, self.group.calendar(), self.settings.close_after_days),
                       "close", "", None))
        return min(timers, key=lambda t: t[0])

    async def _wait_and_act(self) -> None:
        version = self.version
        timer = self._next_timer()
        assert timer is not None
        delay = timer[0] - self._now()
        woken = False
        if delay > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.deferred.pending or self.version != version,
                                              timeout=self.clock.real_delay(delay))
                woken = True
        if self.deferred.pending:
            await self.deferred.run()
        # the timer ran out: act on it, even when the clock reads a hair before its moment (Temporal's timers
        # count whole milliseconds, a business clock scales them), or the loop would wait again, forever
        if woken or self.version != version or self.r.status != "open":
            return
        await self._on_timer(*timer)

    async def _on_timer(self, at: datetime, kind: str, site: str, decision: Decision | None) -> None:
        r = self.r
        self.version += 1
        if kind == "notice" and decision is not None:
            h = r.hospital(site)
            assert h is not None
            h.fired.append(decision.step)
            to = str(decision.data.get("to") or "")
            self._remember(decision.action, site, "", decision.reason)
            if to == "head":
                h.escalated = True
                await self._escalate(h, decision.step)
            else:
                h.reminders += 1
                notice = "late" if decision.action == "escalate" else str(decision.data.get("kind") or "before")
                await self._request(h, notice, decision.step, lead_days=decision.data.get("lead_days"))
            await self._write_rows([h])
            await self._update_status_cards()
        elif kind == "summary":
            r.summarized = True
            self._remember("summary", "", "", f"deadline passed: {r.answered}/{len(r.hospitals)} in")
            await self._send_summary("deadline")
        else:
            for h in r.hospitals:
                if h.status == "waiting":
                    h.status = "missing"
            r.status = "closed"
            self._remember("closed", "", "", f"{self.settings.close_after_days} days after the deadline")
            await self._write_rows([h for h in r.hospitals if h.status == "missing"])
            await self._update_status_cards()
            await self._send_summary("closed")

    # --------------------------------------------------------------------------------------- answers

    @workflow.update(name="answer")
    async def answer(self, request: AnswerRequest) -> dict[str, Any]:
        """A hospital's acknowledgement, or its material's link from the card's form.

        Decided and answered at once; the row, the cards and the summary follow in the main loop.
        """
        self.seen.first_time(request.event_id)
        await workflow.wait_condition(lambda: self.loaded)
        h = self.r.hospital(request.site)
        locale = h.locale if h else self._group_locale()
        problem = rules.check_answer(self.r, h, request)
        if problem:
            raise Refused(rules.text(problem, locale))
        assert h is not None
        files = [UploadedFile(link=request.link.strip())] if request.op == "submit" else []
        self._record(h, request.actor_open_id, files, f"{request.op} via card")
        return {"ok": True, "toast": rules.text("acknowledged" if request.op == "acknowledge" else "submitted",
                                                locale, title=self.r.title)}

    @answer.validator
    def _validate_answer(self, request: AnswerRequest) -> None:
        # refused before it is written to history: the answer is at once and nothing changes
        h = self.r.hospital(request.site)
        locale = h.locale if h else self._group_locale()
        if request.event_id and request.event_id in self.seen:
            raise Refused(rules.text("already", locale))
        if self.loaded:
            problem = rules.check_answer(self.r, h, request)
            if problem:
                raise Refused(rules.text(problem, locale))

    @workflow.signal(name="upload")
    async def upload(self, note: FileNote) -> None:
        """A file sent to the bot naming this round: the sender's hospital has uploaded its material."""
        if not self.seen.first_time(note.message_id):
            return  # the same message pushed again
        await workflow.wait_condition(lambda: self.loaded)
        mine = rules.hospitals_of_sender(self.r, note.sender_open_id)
        file = UploadedFile(file_key=note.file_key, name=note.file_name, message_id=note.message_id)
        if self.r.status not in ("open", "all_in") or self.r.kind != "upload" or not mine:
            why = "closed" if self.r.status not in ("open", "all_in") else (
                "wrong_kind" if self.r.kind != "upload" else "not_yours")
            self._remember("file_refused", "", note.sender_open_id, f"{note.file_name}: {why}")
            context = {"why": why, "file_name": note.file_name}
            self.deferred.add(self._reply, note.message_id, "documents:file_refused", context,
                              mine[0].locale if mine else self._group_locale())
            return
        h = mine[0]
        if h.status == "waiting":
            self._record(h, note.sender_open_id, [file], "file message")
        else:  # a further file of a hospital that answered: kept, counted once
            h.files.append(file)
            self.version += 1
            self._remember("file_added", h.site, note.sender_open_id, note.file_name)
            self.deferred.add(self._write_rows, [h])
        self.deferred.add(self._reply, note.message_id, "documents:file_received",
                          {"file_name": note.file_name, "hospital": h.name}, h.locale)

    def _record(self, h: Hospital, actor: str, files: list[UploadedFile], how: str) -> None:
        r, now = self.r, self._now()
        assert r.deadline is not None
        h.status = "acknowledged" if r.kind == "read" else "uploaded"
        h.answered_by, h.answered_at = actor, now
        h.files.extend(files)
        h.late = rules.late(r.deadline, now, self._calendar(h.site))
        self.version += 1
        self._remember(h.status, h.site, actor, how + ("; late" if h.late else ""))
        if all(x.status != "waiting" for x in r.hospitals):
            r.status = "all_in"
        self.deferred.add(self._after_answer, h.site, r.status == "all_in")

    async def _after_answer(self, site: str, all_in: bool) -> None:
        h = self.r.hospital(site)
        assert h is not None
        for message_id in h.cards.values():
            await self._update_card(message_id, "documents:request.card", self._hospital_context(h, "answered"),
                                    h.locale, h.timezone)
        await self._write_rows([h])
        await self._update_status_cards()
        if all_in:
            self.r.summarized = True
            await self._send_summary("all_in")

    # ---------------------------------------------------------------------------------------- query

    @workflow.query(name="state")
    def state(self) -> Round:
        return self.r.model_copy(update={"history": self.r.history[-20:]})

    # -------------------------------------------------------------------------------------- messages

    def _group_locale(self) -> str:
        return self.group.locale if self.group else "zh_CN"

    def _round_context(self) -> dict[str, Any]:
        r = self.r
        return {"round": r.round_id, "kind": r.kind, "title": r.title, "body": r.body, "link": r.link,
                "deadline": r.deadline.isoformat() if r.deadline else "", "now": self._now().isoformat()}

    def _hospital_context(self, h: Hospital, notice: str, **extra: Any) -> dict[str, Any]:
        return {**self._round_context(), "site": h.site, "hospital": h.name, "notice": notice,
                "status": h.status, "answered_by": h.answered_by,
                "answered_at": h.answered_at.isoformat() if h.answered_at else "", "late": h.late,
                "files": [f.name or f.link for f in h.files], **extra}

    def _status_context(self, final: str = "") -> dict[str, Any]:
        r = self.r
        return {**self._round_context(), **rules.figures(r), "final": final, "hospitals": [
            {"name": h.name, "status": h.status, "late": h.late, "escalated": h.escalated,
             "answered_at": h.answered_at.isoformat() if h.answered_at else ""} for h in r.hospitals]}

    async def _request(self, h: Hospital, notice: str, step: str, lead_days: Any = None) -> None:
        """The hospital's card to each responsible person (first or a reminder); the first's message id is
        kept, so an answer marks every card answered."""
        for open_id in h.responsible:
            sent = await self._send(open_id, "documents:request.card",
                                    self._hospital_context(h, notice, lead_days=lead_days),
                                    f"{h.site}:{step}:{open_id}", h.locale, h.timezone)
            if sent is not None:
                h.cards[open_id] = sent

    async def _escalate(self, h: Hospital, step: str) -> None:
        if not h.head:
            self._remember("escalation_skipped", h.site, "", "no head_open_id for this site")
            return
        await self._send(h.head, "documents:escalation.card", self._hospital_context(h, "late"),
                         f"{h.site}:{step}", h.locale, h.timezone)

    async def _send_status_card(self, open_id: str) -> None:
        sent = await self._send(open_id, "documents:status.card", self._status_context(), f"status:{open_id}",
                                self._group_locale(), None)
        if sent is not None:
            self.r.status_cards[open_id] = sent

    async def _update_status_cards(self) -> None:
        for message_id in self.r.status_cards.values():
            await self._update_card(message_id, "documents:status.card", self._status_context(),
                                    self._group_locale(), None)

    async def _send_summary(self, why: str) -> None:
        for open_id in self._hq():
            await self._send(open_id, "documents:summary.card", self._status_context(why),
                             f"summary:{why}:{open_id}", self._group_locale(), None)

    async def _send(self, open_id: str, template: str, context: dict[str, Any], step: str, locale: str,
                    timezone: str | None) -> str | None:
        request = fr.SendMessage(org=workflow_org(), to=fr.Recipient(id=open_id), template=template,
                                 context=context, idempotency_key=f"{workflow.info().workflow_id}:{step}",
                                 locale=locale, timezone=timezone)
        try:
            sent = await feishu_call(fr.SEND_MESSAGE, request, result_type=fr.SentMessage)
        except ActivityError as error:
            # the round goes on; the failure is in the history the status query shows
            workflow.logger.warning("message %s of %s not sent: %s", template, self.r.round_id, error)
            self._remember("send_failed", "", open_id, f"{template}: {error}")
            return None
        return str(sent.message_id)

    async def _reply(self, message_id: str, template: str, context: dict[str, Any], locale: str) -> None:
        request = fr.SendMessage(org=workflow_org(), reply_to=message_id, template=template,
                                 context={**self._round_context(), **context},
                                 idempotency_key=f"{workflow.info().workflow_id}:reply:{message_id}", locale=locale)
        try:
            await feishu_call(fr.SEND_MESSAGE, request, result_type=fr.SentMessage)
        except ActivityError as error:
            workflow.logger.warning("reply %s of %s not sent: %s", template, self.r.round_id, error)

    async def _update_card(self, message_id: str, template: str, context: dict[str, Any], locale: str,
                           timezone: str | None) -> None:
        try:
            await feishu_call(fr.UPDATE_CARD, fr.UpdateCard(org=workflow_org(), message_id=message_id,
                                                            template=template, context=context, locale=locale,
                                                            timezone=timezone))
        except ActivityError as error:
            workflow.logger.warning("card %s of %s not updated: %s", template, self.r.round_id, error)

    async def _write_round_id(self, record_id: str) -> None:
        """Put the round id into the rounds-table row that started it, so people can ask about it."""
        try:
            await feishu_call(fr.BITABLE_UPDATE, fr.BitableUpdate(
                org=workflow_org(), app_token=self.settings.app_token, table_id=self.settings.rounds_table_id,
                record_id=record_id, fields={self.settings.fields.round_id: self.r.round_id}),
                result_type=fr.BitableRecord)
        except ActivityError as error:
            workflow.logger.warning("round id of %s not written to its row: %s", self.r.round_id, error)

    async def _write_rows(self, hospitals: list[Hospital]) -> None:
        """Upsert the answers rows of ``hospitals`` (one per round × hospital, keyed by round/site)."""
        if not hospitals:
            return
        names = self.settings.answer_fields
        try:
            await feishu_call(fr.BITABLE_UPSERT, fr.BitableUpsert(
                org=workflow_org(), app_token=self.settings.app_token, table_id=self.settings.answers_table_id,
                key_field=names.key, records=[answer_fields(self.r, h, self.settings) for h in hospitals],
                client_token=f"{workflow.info().workflow_id}:{len(self.r.history)}:"
                             f"{'-'.join(h.site for h in hospitals)}"),
                result_type=fr.UpsertResult)
        except ActivityError as error:
            workflow.logger.warning("answers rows of %s not written: %s", self.r.round_id, error)

    def _remember(self, action: str, site: str, actor: str, note: str) -> None:
        self.r.history.append(HistoryEntry(at=self._now(), action=action, site=site, actor_open_id=actor,
                                           note=note))
        del self.r.history[:-HISTORY_KEPT]


WORKFLOWS = [RoundWorkflow]
