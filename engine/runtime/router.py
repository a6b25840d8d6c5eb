"""The router: a normalized event goes through the enabled plugins' ``route_event`` hooks, and the
actions they return are carried out on Temporal.

It is the only place where enablement is checked: an organization that did not enable a scenario never
reaches that scenario's workflows, and an action aimed at another organization is refused.

An event that routes to nothing leaves a DEBUG line saying why (ids, types and scenario names only,
never message text); a card press, which only our own cards make, a WARNING. A mention of the bot that
matches no command is answered with :data:`HELP_TEMPLATE` in the organization's locale: it lists what
each enabled scenario's optional ``_help`` partial (``templates/<locale>/_help.j2``) says its commands
are.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from engine import actions as act
from engine.config import OrgContext
from engine.dormant import query_running, signal_running
from engine.events import ApprovalStatusChanged, CardAction, FeishuEvent, MessageReceived
from engine.ids import workflow_id
from engine.notices.toasts import toast
from engine.plugins import PluginSet
from engine.runtime.dispatch import DispatchResult
from engine.runtime.errors import TemporalUnavailable

log = logging.getLogger(__name__)

# gRPC statuses that mean "Temporal is not there right now": Feishu must deliver the event again.
_UNAVAILABLE = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED,
                RPCStatusCode.RESOURCE_EXHAUSTED}

class ReplySender(Protocol):
    """Sends ``reply`` (idempotency key ``uuid``) in ``org``'s locale; ``chat_id``: the chat replied in."""

    def __call__(self, org: OrgContext, reply: act.Reply, uuid: str, extra: dict[str, Any], *,
                 chat_id: str | None = None) -> Awaitable[None]: ...


_MISSING = object()  # what a query of a workflow that does not run returns
_SKIPPED = object()  # what a signal to a workflow that does not run returns: no effect to count

HELP_TEMPLATE = "engine:help"
"""The reply to a mention of the bot that no enabled scenario takes (``engine/notices/templates``)."""


class RoutingError(Exception):
    """A plugin returned an action the router will not carry out (wrong scenario, unknown type)."""


class Router:
    """Carries out plugin actions for one Temporal client; implements the ingress's ``Dispatcher``."""

    def __init__(self, client: Client, plugins: PluginSet, *, task_queue: str,
                 send_reply: ReplySender | None = None):
        self.client = client
        self.plugins = plugins
        self.task_queue = task_queue
        self.send_reply = send_reply
        self._hooks: dict[tuple[str, ...], Any] = {}

    def actions_for(self, event: FeishuEvent, org: OrgContext) -> list[act.Action]:
        """Ask the organization's enabled plugins what to do; pure, no I/O."""
        key = tuple(sorted(org.plugins))
        hook = self._hooks.get(key)
        if hook is None:
            hook = self._hooks[key] = self.plugins.hook_for("route_event", org.plugins)
        results: Sequence[list[act.Action] | None] = hook(event=event, org=org)
        return [action for result in results if result for action in result]

    async def dispatch(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        actions = self.actions_for(event, org)
        result = DispatchResult()
        if isinstance(event, ApprovalStatusChanged):
            # the engine's own: whichever scenario asked, the follower of the instance re-reads it
            result.effects += await self.execute_approval(event, org)
        if not actions:
            return result if result.effects else await self._unrouted(event, org)
        # Several scenarios may ask after the same key ("CT-0012 状态"): the one that knows it answers,
        # and "not found" is said once, only when none does.
        missing: list[act.Reply] = []
        found = False
        for action in actions:
            outcome = await self.execute(action, event, org, missing=missing)
            result.effects += outcome is not _SKIPPED
            found = found or (isinstance(action, act.QueryWorkflow) and outcome is not _MISSING)
            if isinstance(outcome, dict):
                result.toast = outcome.get("toast", result.toast)
                result.card = outcome.get("card", result.card)
        if missing and not found:
            await self._reply(org, missing[0], event, {})
        return result

    async def _unrouted(self, event: FeishuEvent, org: OrgContext) -> DispatchResult:
        """No enabled scenario took ``event``: say why in the log; answer a mention of the bot with help."""
        enabled = ", ".join(sorted(org.plugins)) or "none"
        asks_bot = isinstance(event, MessageReceived) and event.mentions_bot
        if not isinstance(event, MessageReceived):
            why = "no enabled scenario acts on it"
        elif asks_bot:
            why = "a mention of the bot that matches no command"
        elif event.chat_type == "p2p":
            why = "a direct message that matches no command"
        else:  # the usual case in a busy group; a bot whose identity is unknown also ends here
            why = f"a group message that does not mention the bot ({len(event.mentions)} other mention(s))"
        answer = asks_bot and self.send_reply is not None
        # a press on one of our own cards that nothing takes is a fault (a disabled plugin, an old card):
        # said at WARNING; the rest is everyday chatter in busy groups
        level = logging.WARNING if isinstance(event, CardAction) else logging.DEBUG
        log.log(level, "event %s (%s) of %s routes to nothing: %s (enabled scenarios: %s)%s", event.event_id,
                event.event_type, org.id, why, enabled, "; answered with help" if answer else "")
        if not answer:
            return DispatchResult()
        assert isinstance(event, MessageReceived)
        help_reply = act.Reply(template=HELP_TEMPLATE, context={"scenarios": sorted(org.plugins)},
                               message_id=event.message_id)
        await self.execute(help_reply, event, org)
        return DispatchResult(effects=1)

    async def execute_approval(self, event: ApprovalStatusChanged, org: OrgContext) -> int:
        """Signal the workflow following ``event.instance_code`` (``engine.approvals``); 0 when none does.

        No workflow follows an instance that another system created, or one the follower has not started
        yet: it reads the instance when it starts, so nothing is lost. Temporal being unreachable raises
        :class:`TemporalUnavailable` (Feishu pushes the event again).
        """
        from engine.approvals import CHANGED_SIGNAL, ApprovalChanged, approval_workflow_id

        wid = approval_workflow_id(org.id, event.instance_code)
        note = ApprovalChanged(event_id=event.event_id, instance_code=event.instance_code, status=event.status)
        try:
            await self.client.get_workflow_handle(wid).signal(CHANGED_SIGNAL, note)
        except RPCError as error:
            if error.status in _UNAVAILABLE:
                raise TemporalUnavailable(str(error)) from error
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            log.info("approval event %s (%s): no workflow follows instance %s", event.event_id, event.status,
                     event.instance_code)
            return 0
        except (ConnectionError, TimeoutError) as error:
            raise TemporalUnavailable(str(error)) from error
        self._followed(wid)
        return 1

    def _followed(self, wid: str) -> None:
        """A hook for a recording router (tests): the approval follower ``wid`` was signalled."""

    async def healthy(self) -> bool:
        try:
            await self.client.service_client.check_health()
            return True
        except Exception:
            return False

    def _workflow_id(self, action: act.StartWorkflow | act.SignalWithStart | act.SignalWorkflow
                     | act.UpdateWorkflow | act.QueryWorkflow, org: OrgContext) -> str:
        if action.scenario not in org.plugins:
            raise RoutingError(f"organization {org.id!r} has not enabled scenario {action.scenario!r}")
        return workflow_id(org.id, action.scenario, action.key)

    async def execute(self, action: act.Action, event: FeishuEvent, org: OrgContext, *,
                      missing: list[act.Reply] | None = None) -> Any:
        """Carry out one action; Temporal being unreachable raises :class:`TemporalUnavailable`.

        A query of a workflow that does not run returns ``_MISSING``; its ``reply_missing`` is sent at
        once, or appended to ``missing`` for the caller to decide.
        """
        try:
            return await self._execute(action, event, org, missing)
        except RPCError as error:
            if error.status in _UNAVAILABLE:
                raise TemporalUnavailable(str(error)) from error
            raise
        except (ConnectionError, TimeoutError) as error:
            raise TemporalUnavailable(str(error)) from error

    async def _execute(self, action: act.Action, event: FeishuEvent, org: OrgContext,
                       missing: list[act.Reply] | None) -> Any:
        if isinstance(action, act.Reply):
            return await self._reply(org, action, event, {})
        wid = self._workflow_id(action, org)
        if isinstance(action, act.StartWorkflow):
            if action.once:
                # Running or closed, a workflow that already had this ID is not started again.
                try:
                    await self.client.start_workflow(
                        action.workflow, args=action.args, id=wid, task_queue=self.task_queue,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
                except WorkflowAlreadyStartedError:
                    log.info("%s already started: not started again", wid)
                return None
            # Starting twice is a no-op: the running workflow keeps its state.
            await self.client.start_workflow(
                action.workflow, args=action.args, id=wid, task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            return None
        if isinstance(action, act.SignalWithStart):
            await self.client.start_workflow(
                action.workflow, args=action.start_args, id=wid, task_queue=self.task_queue,
                start_signal=action.signal, start_signal_args=[action.arg],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
            return None
        handle = self.client.get_workflow_handle(wid)
        if isinstance(action, act.SignalWorkflow):
            # a workflow started with a delay (engine.dormant) takes the signal at once
            if not await signal_running(self.client, wid, action.signal, action.arg):
                log.info("signal %s skipped: no workflow %s", action.signal, wid)
                return _SKIPPED
            return None
        if isinstance(action, act.UpdateWorkflow):
            try:
                return await handle.execute_update(action.update, action.arg, id=action.update_id)
            except WorkflowUpdateFailedError as error:
                cause = error.cause
                message = getattr(cause, "message", None) or str(cause or error)
                return {"toast": message}
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                log.warning("update %s of %s: no workflow %s (a closed item or an old card)", action.update,
                            event.event_id, wid)
                return {"toast": toast("card_expired", org.locale)}
        if isinstance(action, act.QueryWorkflow):
            try:
                state = await query_running(self.client, wid, action.query)
            except RPCError as error:
                if error.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                    raise
                if action.reply_missing is not None:
                    if missing is None:
                        await self._reply(org, action.reply_missing, event, {})
                    else:
                        missing.append(action.reply_missing)
                return _MISSING
            if action.reply is not None:
                await self._reply(org, action.reply, event, {"result": _plain(state)})
            return state
        raise RoutingError(f"unknown action {type(action).__name__}")

    async def _reply(self, org: OrgContext, reply: act.Reply, event: FeishuEvent,
                     extra: dict[str, Any]) -> None:
        if self.send_reply is None:
            raise RoutingError("this router cannot send replies (no Feishu client)")
        # One reply per message and template, also when Feishu pushes the same message again under a new
        # event id (Feishu's guidance: deduplicate messages on message_id); other events key on event_id.
        source = getattr(event, "message_id", "") or event.event_id
        uuid = hashlib.sha256(f"{source}|{reply.template}".encode()).hexdigest()[:32]
        # the chat, so the reply waits under that chat's own rate limit and not behind other chats
        chat_id = getattr(event, "chat_id", None) or getattr(event, "open_chat_id", None) or None
        await self.send_reply(org, reply, uuid, extra, chat_id=chat_id)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value


def feishu_reply_sender(app: Any) -> ReplySender:
    """A reply sender that renders in the organization's locale and replies through the Feishu client."""

    async def send(org: OrgContext, reply: act.Reply, uuid: str, extra: dict[str, Any], *,
                   chat_id: str | None = None) -> None:
        from engine.template_limits import render_message_off_loop

        # off the event loop the ingress shares; a refused override falls back to the plugin's template
        message = await render_message_off_loop(
            app.templates, reply.template, {**reply.context, **extra}, locale=reply.locale or org.locale,
            override_dir=org.templates_dir, tz=org.timezone, org_id=org.id)
        await app.feishu.reply_message(reply.message_id, message.msg_type, message.content, uuid,
                                       chat_id=chat_id)

    return send
