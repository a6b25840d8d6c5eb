"""The engine's Feishu activities: what workflows call (by the names in :mod:`engine.feishu.requests`).

Each activity renders (for messages and cards) in the organization's locale, timezone and template
overrides, calls :class:`~engine.feishu.client.FeishuClient`, and turns failures into Temporal
``ApplicationError``s: ``FeishuError.<code>`` (retryable or not, with Feishu's requested delay), and
``TemplateError`` / ``InvalidRequest`` / ``UnknownOrganization``, which are never retried because
trying again cannot fix them.

Idempotency: message sends and chat creates carry a ``uuid`` derived from the request's
``idempotency_key`` (Feishu dedupes message uuids for 1 h and chat uuids for 10 h; both take at most
50 characters, so a fixed-length digest is used rather than the raw key); Bitable writes derive
per-batch ``client_token``s from the request's ``client_token``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.feishu import requests as rq
from engine.feishu.client import FeishuClient, derived_token
from engine.feishu.errors import FeishuError
from engine.template_limits import render_message_off_loop
from engine.templates import RenderedMessage, TemplateEngine, TemplateError

if TYPE_CHECKING:
    from engine.config import EngineConfig, OrgContext

log = logging.getLogger(__name__)

T = TypeVar("T")

CARD_MSG_TYPE = "interactive"


def message_uuid(org: str, idempotency_key: str) -> str:
    """Feishu's ``uuid`` for a send: a 36-character digest of the org and key (Feishu allows 50).

    The same key always gives the same uuid, so a retried activity is deduplicated by Feishu.
    """
    return derived_token(org, "message", idempotency_key)


def chat_uuid(org: str, idempotency_key: str) -> str:
    """Feishu's ``uuid`` for a chat create (deduplicated for 10 h)."""
    return derived_token(org, "chat", idempotency_key)


class FeishuActivities:
    """The Feishu activities bound to one config, client and template engine; ``all()`` for the worker."""

    def __init__(self, config: EngineConfig, client: FeishuClient, templates: TemplateEngine) -> None:
        self.config = config
        self.client = client
        self.templates = templates

    def all(self) -> list[Callable[..., Any]]:
        """The bound activity methods, for ``Worker(activities=...)``."""
        return [
            self.send_message, self.update_card, self.create_chat, self.add_chat_members, self.update_chat,
            self.pin_message, self.upload_image, self.bitable_search, self.bitable_get, self.bitable_create,
            self.bitable_update, self.bitable_upsert, self.lookup_users, self.create_approval, self.get_approval,
            self.cancel_approval,
        ]

    # ------------------------------------------------------------------------------ the plumbing
    def _org(self, org_id: str) -> OrgContext:
        try:
            return self.config.org(org_id)
        except KeyError as exc:
            raise ApplicationError(f"unknown organization {org_id!r} (not in {self.config.path})",
                                   type="UnknownOrganization", non_retryable=True) from exc

    async def _run(self, call: str, org: str, key: str | None, work: Callable[[], Awaitable[T]]) -> T:
        """Log the call and run it, mapping FeishuError to the Temporal error workflows see."""
        attempt = activity.info().attempt if activity.in_activity() else 1
        log.info("feishu %s org=%s key=%s attempt=%s", call, org, key or "-", attempt)
        try:
            return await work()
        except FeishuError as exc:
            log.warning("feishu %s org=%s key=%s failed: %s", call, org, key or "-", exc)
            raise exc.to_application_error() from exc

    async def _render(self, org: OrgContext, template: str, context: dict[str, Any],
                      locale: str | None, timezone: str | None = None) -> RenderedMessage:
        """Render ``template`` for ``org`` off the event loop; one that cannot render is a non-retryable error.

        An override refused by the render limits falls back to the plugin's template (template_limits.py).
        """
        try:
            return await render_message_off_loop(
                self.templates, template, context, locale=locale or org.locale, override_dir=org.templates_dir,
                tz=timezone or org.timezone, org_id=org.id)
        except TemplateError as exc:
            raise ApplicationError(
                f"template {template!r} failed to render for organization {org.id!r}: "
                f"{exc}",
                type="TemplateError", non_retryable=True) from exc

    # ------------------------------------------------------------------------------------ messages
    @activity.defn(name=rq.SEND_MESSAGE)
    async def send_message(self, request: rq.SendMessage) -> rq.SentMessage:
        """Render and send (or reply); a retry with the same idempotency key sends nothing twice."""
        org = self._org(request.org)
        if request.reply_to is None and request.to is None:
            raise ApplicationError(f"{rq.SEND_MESSAGE}: needs `to` or `reply_to`", type="InvalidRequest",
                                   non_retryable=True)
        rendered = await self._render(org, request.template, request.context, request.locale,
                                       request.timezone)
        uuid = message_uuid(request.org, request.idempotency_key)

        async def work() -> rq.SentMessage:
            if request.reply_to is not None:
                message_id, chat_id = await self.client.reply_message(
                    request.reply_to, rendered.msg_type, rendered.content, uuid)
            else:
                assert request.to is not None
                message_id, chat_id = await self.client.send_message(
                    request.to.id_type, request.to.id, rendered.msg_type, rendered.content, uuid)
            return rq.SentMessage(message_id=message_id, chat_id=chat_id)

        return await self._run("im.v1.message.create", request.org, request.idempotency_key, work)

    @activity.defn(name=rq.UPDATE_CARD)
    async def update_card(self, request: rq.UpdateCard) -> None:
        """Render a card template and replace the card of ``message_id`` with it."""
        org = self._org(request.org)
        rendered = await self._render(org, request.template, request.context, request.locale,
                                       request.timezone)
        if rendered.msg_type != CARD_MSG_TYPE:
            raise ApplicationError(
                f"template {request.template!r} renders a {rendered.msg_type!r} message, not a card",
                type="TemplateError", non_retryable=True)
        await self._run("im.v1.message.patch", request.org, request.message_id,
                        lambda: self.client.update_card(request.message_id, rendered.content))

    # --------------------------------------------------------------------------------------- chats
    @activity.defn(name=rq.CREATE_CHAT)
    async def create_chat(self, request: rq.CreateChat) -> rq.ChatCreated:
        """Create a group chat (members beyond 50 are added in further calls)."""
        self._org(request.org)
        return await self._run(
            "im.v1.chat.create", request.org, request.idempotency_key,
            lambda: self.client.create_chat(request.name, request.description, request.owner_open_id,
                                            request.member_open_ids,
                                            chat_uuid(request.org, request.idempotency_key)))

    @activity.defn(name=rq.ADD_CHAT_MEMBERS)
    async def add_chat_members(self, request: rq.AddChatMembers) -> list[str]:
        """Add members in calls of 50; returns the ids Feishu reported invalid."""
        self._org(request.org)
        return await self._run("im.v1.chat_members.create", request.org, request.chat_id,
                               lambda: self.client.add_chat_members(request.chat_id, request.member_open_ids))

    @activity.defn(name=rq.UPDATE_CHAT)
    async def update_chat(self, request: rq.UpdateChat) -> None:
        """Rename a chat or change its description."""
        self._org(request.org)
        await self._run("im.v1.chat.update", request.org, request.chat_id,
                        lambda: self.client.update_chat(request.chat_id, request.name, request.description))

    @activity.defn(name=rq.PIN_MESSAGE)
    async def pin_message(self, request: rq.PinMessage) -> None:
        """Pin a message in its chat."""
        self._org(request.org)
        await self._run("im.v1.pin.create", request.org, request.message_id,
                        lambda: self.client.pin_message(request.message_id))

    @activity.defn(name=rq.UPLOAD_IMAGE)
    async def upload_image(self, request: rq.UploadImage) -> str:
        """Upload image bytes; returns the ``image_key`` for messages and cards."""
        self._org(request.org)
        return await self._run("im.v1.image.create", request.org, request.filename,
                               lambda: self.client.upload_image(request.content, request.filename))

    # ------------------------------------------------------------------------------------- bitable
    @activity.defn(name=rq.BITABLE_SEARCH)
    async def bitable_search(self, request: rq.BitableSearch) -> list[rq.BitableRecord]:
        """All records matching the filter (every page)."""
        self._org(request.org)
        return await self._run(
            "bitable.v1.app_table_record.search", request.org, request.table_id,
            lambda: self.client.bitable_search(request.app_token, request.table_id, request.filter,
                                               request.field_names, request.page_size))

    @activity.defn(name=rq.BITABLE_GET)
    async def bitable_get(self, request: rq.BitableGet) -> rq.BitableRecord:
        """One record by id."""
        self._org(request.org)
        return await self._run(
            "bitable.v1.app_table_record.get", request.org, request.record_id,
            lambda: self.client.bitable_get(request.app_token, request.table_id, request.record_id))

    @activity.defn(name=rq.BITABLE_CREATE)
    async def bitable_create(self, request: rq.BitableCreate) -> list[rq.BitableRecord]:
        """Create records (batches of 500, per-batch client tokens)."""
        self._org(request.org)
        return await self._run(
            "bitable.v1.app_table_record.batch_create", request.org, request.client_token,
            lambda: self.client.bitable_create(request.app_token, request.table_id, request.records,
                                               request.client_token))

    @activity.defn(name=rq.BITABLE_UPDATE)
    async def bitable_update(self, request: rq.BitableUpdate) -> rq.BitableRecord:
        """Update one record's fields."""
        self._org(request.org)
        return await self._run(
            "bitable.v1.app_table_record.update", request.org, request.record_id,
            lambda: self.client.bitable_update(request.app_token, request.table_id, request.record_id,
                                               request.fields))

    @activity.defn(name=rq.BITABLE_UPSERT)
    async def bitable_upsert(self, request: rq.BitableUpsert) -> rq.UpsertResult:
        """Create or update records matched on ``key_field`` (serialized per table)."""
        self._org(request.org)
        return await self._run(
            "bitable.upsert", request.org, request.client_token,
            lambda: self.client.bitable_upsert(request.app_token, request.table_id, request.key_field,
                                               request.records, request.client_token))

    # ------------------------------------------------------------------------------------ contacts
    @activity.defn(name=rq.LOOKUP_USERS)
    async def lookup_users(self, request: rq.LookupUsers) -> list[rq.UserRef]:
        """Open ids for emails and mobiles."""
        self._org(request.org)
        return await self._run("contact.v3.user.batch_get_id", request.org, None,
                               lambda: self.client.lookup_users(request.emails, request.mobiles))

    # ----------------------------------------------------------------------------------- approvals
    @activity.defn(name=rq.CREATE_APPROVAL)
    async def create_approval(self, request: rq.CreateApproval) -> str:
        """Create an approval instance once per idempotency key; returns its instance code."""
        self._org(request.org)
        return await self._run(
            "approval.v4.instance.create", request.org, request.idempotency_key,
            lambda: self.client.create_approval(request.approval_code, request.applicant_open_id, request.form,
                                                request.node_approvers,
                                                derived_token(request.org, "approval", request.idempotency_key)))

    @activity.defn(name=rq.GET_APPROVAL)
    async def get_approval(self, request: rq.GetApproval) -> rq.ApprovalInstance:
        """The instance as Feishu has it now (what an approval event is checked against)."""
        self._org(request.org)
        return await self._run("approval.v4.instance.get", request.org, request.instance_code,
                               lambda: self.client.get_approval(request.instance_code))

    @activity.defn(name=rq.CANCEL_APPROVAL)
    async def cancel_approval(self, request: rq.CancelApproval) -> None:
        """Withdraw a pending instance on behalf of its applicant."""
        self._org(request.org)
        await self._run("approval.v4.instance.cancel", request.org, request.instance_code,
                        lambda: self.client.cancel_approval(request.approval_code, request.instance_code,
                                                            request.applicant_open_id))
