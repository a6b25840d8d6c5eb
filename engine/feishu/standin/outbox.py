"""The outbox: every message the bot sent, with who got it, where, for which organization and plugin, and when.

One row per message (oldest first), the shape ``GET /_standin/outbox`` answers and the outbox page draws:

* ``time``: ``YYYY-MM-DD HH:MM:SS`` in ``zone``, the organization's IANA zone (its tenant's, see
  :meth:`State.add_tenant`; :data:`DEFAULT_ZONE` when the tenant is not named); ``time_iso`` the same
  moment with its UTC offset; ``create_time`` Feishu's milliseconds since the epoch;
* ``tenant_key`` and ``org_name``: the organization the message belongs to, decided in this order: the
  recipient's own ``tenant_key`` (a user seeded with one, or learnt from an event pushed as that user),
  the sender of the message replied to, a chat first seen in an event of another tenant, the only
  organization whose plugins include the message's plugin, else the sending app's tenant;
* ``plugin``: the ``scenario`` of a card's button values (or the plugin prefix of an ``op`` such as
  ``handover.entry``); empty for messages that carry none, such as text;
* ``to`` (``name (id)`` for a known user, as before), ``to_name``, ``chat_name``, ``chat_type``
  (``p2p``/``group``), ``peer`` (the other person of a p2p chat), ``pinned``, ``updated`` and
  ``earlier_versions``, ``deleted``, ``reply_to``, ``text``, ``card``, ``msg_type``, ``app_id``, ``uuid``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from .core import FeishuStandIn, SentMessage

DEFAULT_ZONE = "Asia/Shanghai"


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone ``name`` (``Asia/Shanghai``), or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def callback_values(card: Any) -> Iterator[dict[str, Any]]:
    """Every callback value in a card: 2.0 ``behaviors`` and 1.0 button ``value``s, in order."""
    if isinstance(card, dict):
        if card.get("tag") in ("button", "overflow", "select_static", "input", "date_picker") \
                and isinstance(card.get("value"), dict):
            yield card["value"]
        for behaviour in card.get("behaviors") or []:
            if isinstance(behaviour, dict) and isinstance(behaviour.get("value"), dict):
                yield behaviour["value"]
        for key, value in card.items():
            if key not in ("value", "behaviors"):
                yield from callback_values(value)
    elif isinstance(card, list):
        for item in card:
            yield from callback_values(item)


def plugin_of(card: Any, known: set[str]) -> str:
    """The plugin a card came from: a value's ``scenario``, or an ``op`` prefixed with a known plugin."""
    for value in callback_values(card):
        scenario = value.get("scenario")
        if isinstance(scenario, str) and scenario:
            return scenario
        op = value.get("op")
        if isinstance(op, str) and "." in op and op.split(".", 1)[0] in known:
            return op.split(".", 1)[0]
    return ""


class Outbox:
    """The rows of one stand-in's outbox; ``zone`` (a ``?tz=`` on the page) overrides every tenant's zone."""

    def __init__(self, standin: FeishuStandIn, zone: ZoneInfo | None = None) -> None:
        self.standin = standin
        self.state = standin.state
        self.zone = zone
        self.pinned = {pin.get("message_id") for pin in self.state.pins}
        self.known_plugins: set[str] = {p for t in self.state.tenants.values() for p in t.get("plugins", [])}

    def rows(self) -> list[tuple[SentMessage, dict[str, Any]]]:
        """``(message, row)`` for every message the bot sent, recalled ones included, oldest first."""
        return [(m, self.row(m)) for m in self.standin.messages(include_deleted=True)]

    def user_name(self, user_id: str) -> str | None:
        """A person's name by any of their ids (or a bot's by its open_id), None when unknown."""
        user = self.state.find_user(user_id)
        if user is not None:
            return str(user.get("name") or user_id)
        for app in self.state.apps.values():
            if user_id in (app.bot_open_id, app.app_id):
                return app.bot_name
        return None

    def tenant_zone(self, tenant_key: str) -> str:
        tenant = self.state.tenants.get(tenant_key) or {}
        name = str(tenant.get("timezone") or DEFAULT_ZONE)
        return name if zone_named(name) else DEFAULT_ZONE

    def row(self, m: SentMessage) -> dict[str, Any]:
        chat = self.state.chats.get(m.chat_id, {})
        user = self.state.find_user(m.to) if m.to and m.receive_id_type not in ("chat_id", "message_id") else None
        p2p = chat.get("chat_mode") == "p2p" or chat.get("chat_type") == "p2p"
        members = chat.get("_members") or []
        peer = user or (self.state.find_user(members[0]) if p2p and members else None)
        plugin = plugin_of(m.card, self.known_plugins) if m.card is not None else ""
        tenant_key = self._tenant(m, peer, chat, plugin)
        tenant = self.state.tenants.get(tenant_key) or {}
        zone_name = self.zone.key if self.zone is not None else self.tenant_zone(tenant_key)
        moment = datetime.fromtimestamp(m.create_time / 1000, UTC).astimezone(ZoneInfo(zone_name))
        return {
            "time": moment.strftime("%Y-%m-%d %H:%M:%S"), "time_iso": moment.isoformat(timespec="seconds"),
            "zone": zone_name, "create_time": m.create_time,
            "message_id": m.message_id, "chat_id": m.chat_id, "chat_name": chat.get("name", ""),
            "chat_type": "p2p" if p2p else "group", "peer": str(peer["name"]) if peer else "",
            "to": (f"{user['name']} ({m.to})" if user else m.to) or "",
            "to_name": str(user["name"]) if user else (chat.get("name") or ""),
            "msg_type": m.msg_type, "text": m.text, "card": m.card, "reply_to": m.reply_to or "",
            "updated": m.updated, "earlier_versions": len(m.history), "deleted": m.deleted,
            "pinned": m.message_id in self.pinned, "plugin": plugin,
            "tenant_key": tenant_key, "org_name": str(tenant.get("name") or tenant_key),
            "app_id": m.app_id, "uuid": m.uuid,
        }

    def _tenant(self, m: SentMessage, peer: dict[str, Any] | None, chat: dict[str, Any], plugin: str) -> str:
        app = self.state.apps.get(m.app_id)
        default = app.tenant_key if app is not None else self.standin.tenant_key
        if peer is not None and peer.get("tenant_key"):
            return str(peer["tenant_key"])
        parent = self.state.messages.get(m.reply_to or "") or {}
        sender_tenant = (parent.get("sender") or {}).get("tenant_key")
        if parent.get("_origin") == "user" and sender_tenant:
            return str(sender_tenant)
        if chat.get("tenant_key") and chat["tenant_key"] != default:
            return str(chat["tenant_key"])
        owners = [key for key, t in self.state.tenants.items() if plugin and plugin in t.get("plugins", [])]
        if len(owners) == 1:
            return owners[0]
        return str(chat.get("tenant_key") or default)
