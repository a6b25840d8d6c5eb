"""Arguments and results of the engine's Feishu activities: the contract workflows call.

Workflows never render templates or talk to Feishu: they pass a template name and a context, and the
activity renders in the organization's locale (with its overrides) and sends. Every send carries an
``idempotency_key`` built from the workflow and step, so a retried activity never sends twice.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ReceiveIdType = Literal["open_id", "user_id", "union_id", "email", "chat_id"]

# Temporal activity type names of the engine's Feishu activities (permanent: running workflows use them).
SEND_MESSAGE = "engine.feishu.send_message"
UPDATE_CARD = "engine.feishu.update_card"
CREATE_CHAT = "engine.feishu.create_chat"
ADD_CHAT_MEMBERS = "engine.feishu.add_chat_members"
UPDATE_CHAT = "engine.feishu.update_chat"
PIN_MESSAGE = "engine.feishu.pin_message"
UPLOAD_IMAGE = "engine.feishu.upload_image"
BITABLE_SEARCH = "engine.feishu.bitable_search"
BITABLE_GET = "engine.feishu.bitable_get"
BITABLE_CREATE = "engine.feishu.bitable_create"
BITABLE_UPDATE = "engine.feishu.bitable_update"
BITABLE_UPSERT = "engine.feishu.bitable_upsert"
LOOKUP_USERS = "engine.feishu.lookup_users"
CREATE_APPROVAL = "engine.feishu.create_approval"
GET_APPROVAL = "engine.feishu.get_approval"
CANCEL_APPROVAL = "engine.feishu.cancel_approval"


class Recipient(BaseModel):
    id_type: ReceiveIdType = "open_id"
    id: str


class SendMessage(BaseModel):
    """Render ``template`` (``scenario:name``) with ``context`` and send it.

    A template whose name ends in ``.card`` renders an interactive card (JSON 2.0); otherwise a text
    message (``msg_type="post"`` for rich text when the template renders a JSON post body).
    With ``reply_to`` set, the message is a reply to that message id and ``to`` is ignored.
    """

    org: str
    to: Recipient | None = None
    reply_to: str | None = None
    template: str
    context: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    locale: str | None = None  # default: the organization's locale
    timezone: str | None = None  # IANA zone of the date filters; default: the organization's (a site's own)


class SentMessage(BaseModel):
    message_id: str
    chat_id: str | None = None


class UpdateCard(BaseModel):
    """Replace the card of a sent message (cards stay updatable for 14 days)."""

    org: str
    message_id: str
    template: str
    context: dict[str, Any] = Field(default_factory=dict)
    locale: str | None = None
    timezone: str | None = None  # as SendMessage's


class CreateChat(BaseModel):
    """Create a group chat. ``idempotency_key`` becomes Feishu's ``uuid`` (deduped for 10 h)."""

    org: str
    name: str
    description: str = ""
    owner_open_id: str | None = None
    member_open_ids: list[str] = Field(default_factory=list)
    idempotency_key: str


class ChatCreated(BaseModel):
    chat_id: str
    invalid_member_ids: list[str] = Field(default_factory=list)


class AddChatMembers(BaseModel):
    """Add members; the activity splits the list into calls of at most 50 users."""

    org: str
    chat_id: str
    member_open_ids: list[str]


class UpdateChat(BaseModel):
    org: str
    chat_id: str
    name: str | None = None
    description: str | None = None


class PinMessage(BaseModel):
    org: str
    message_id: str


class UploadImage(BaseModel):
    """Upload image bytes (PNG/JPEG) for use in messages; returns the image key."""

    # Base64 in JSON: pydantic's default (UTF-8) cannot carry binary image bytes through Temporal's
    # pydantic data converter ("invalid utf-8 sequence").
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    org: str
    content: bytes
    filename: str = "image.png"


class BitableRef(BaseModel):
    org: str
    app_token: str
    table_id: str


class BitableSearch(BitableRef):
    """Search records. ``filter`` is Feishu's filter object (conjunction + conditions)."""

    filter: dict[str, Any] | None = None
    field_names: list[str] | None = None
    page_size: int = 500


class BitableRecord(BaseModel):
    record_id: str
    fields: dict[str, Any] = Field(default_factory=dict)


class BitableGet(BitableRef):
    record_id: str


class BitableCreate(BitableRef):
    """Create records; ``client_token`` makes a retried call create nothing twice."""

    records: list[dict[str, Any]]
    client_token: str


class BitableUpdate(BitableRef):
    record_id: str
    fields: dict[str, Any]


class BitableUpsert(BitableRef):
    """Create or update records matched on ``key_field``; batched within Feishu's 500-record limit.

    Writes to one table are serialized (Feishu allows one writer per table). ``client_token`` is the
    base of the per-batch tokens, so a batch retried after a timeout creates no duplicate rows.
    """

    key_field: str
    records: list[dict[str, Any]]
    client_token: str


class UpsertResult(BaseModel):
    created: int = 0
    updated: int = 0
    record_ids: dict[str, str] = Field(default_factory=dict)  # key value -> record id


class LookupUsers(BaseModel):
    org: str
    emails: list[str] = Field(default_factory=list)
    mobiles: list[str] = Field(default_factory=list)


class UserRef(BaseModel):
    open_id: str | None = None
    user_id: str | None = None
    email: str | None = None
    mobile: str | None = None


class CreateApproval(BaseModel):
    """Create a native approval instance (Approval API v4) of the definition ``approval_code``.

    ``form`` is the list of widget values (``[{"id": widget id, "type": "input", "value": ...}]``), sent as
    Feishu's JSON string; ``node_approvers`` maps a node's ``node_id`` or ``custom_node_id`` to the open ids
    that replace its approvers. ``idempotency_key`` becomes Feishu's ``uuid``, so a retried create returns the
    same instance.
    """

    org: str
    approval_code: str
    applicant_open_id: str
    form: list[dict[str, Any]] = Field(default_factory=list)
    node_approvers: dict[str, list[str]] = Field(default_factory=dict)
    idempotency_key: str


class GetApproval(BaseModel):
    org: str
    instance_code: str


class CancelApproval(BaseModel):
    """Withdraw an instance on behalf of its applicant (only a pending one can be withdrawn)."""

    org: str
    approval_code: str
    instance_code: str
    applicant_open_id: str


class ApprovalTask(BaseModel):
    """One approver's task: ``status`` PENDING, APPROVED, REJECTED, TRANSFERRED, DONE, ...

    ``start_time``/``end_time`` are epoch milliseconds (``end_time`` 0 while pending), as Feishu's
    ``task_list`` gives them.
    """

    id: str
    open_id: str = ""
    status: str
    node_id: str = ""
    custom_node_id: str = ""
    node_name: str = ""
    start_time: int = 0
    end_time: int = 0
    # what its approver wrote deciding it (the instance timeline's entry of this task: PASS, REJECT...)
    comment: str = ""


class ApprovalInstance(BaseModel):
    """An instance as Feishu has it now: ``status`` PENDING, APPROVED, REJECTED, CANCELED or DELETED.

    ``start_time``/``end_time`` are epoch milliseconds (``end_time`` 0 while pending).
    """

    instance_code: str
    approval_code: str
    status: str
    approval_name: str = ""
    applicant_open_id: str = ""
    uuid: str = ""
    start_time: int = 0
    end_time: int = 0
    tasks: list[ApprovalTask] = Field(default_factory=list)
