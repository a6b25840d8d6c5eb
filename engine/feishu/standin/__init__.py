"""A local Feishu Open Platform for tests and ``engine dev``: real HTTP on loopback, real API shapes.

lark-oapi's client talks to it by pointing ``domain`` at :attr:`FeishuStandIn.base_url`. It issues
tokens, delivers messages into an inspectable outbox, keeps Bitable tables and a user directory, runs the
H5 OAuth flow, misbehaves on request (:class:`Fault`), and pushes events to an ingress encrypted and
signed exactly as Feishu does. ``python -m engine.feishu.standin`` runs it as its own process.
"""

from .app import Call
from .core import FeishuStandIn, SentMessage
from .delivery import FEISHU_RETRY_DELAYS, Attempt, DeliveryError, DeliveryResult
from .events import (
    EVENT_APPROVAL,
    EVENT_BITABLE_RECORD_CHANGED,
    EVENT_BOT_ADDED,
    EVENT_CARD_ACTION,
    EVENT_MESSAGE,
    EVENT_USER_CREATED,
    EVENT_USER_DELETED,
    approval_v1,
    bitable_record_changed,
    bot_added,
    card_action_event,
    message_event,
    user_created,
)
from .faults import DEFAULT_RATE_RULES, Fault, RateRule
from .state import App, State, sample_state

__all__ = [
    "DEFAULT_RATE_RULES",
    "EVENT_APPROVAL",
    "EVENT_BITABLE_RECORD_CHANGED",
    "EVENT_BOT_ADDED",
    "EVENT_CARD_ACTION",
    "EVENT_MESSAGE",
    "EVENT_USER_CREATED",
    "EVENT_USER_DELETED",
    "FEISHU_RETRY_DELAYS",
    "App",
    "Attempt",
    "Call",
    "DeliveryError",
    "DeliveryResult",
    "Fault",
    "FeishuStandIn",
    "RateRule",
    "SentMessage",
    "State",
    "approval_v1",
    "bitable_record_changed",
    "bot_added",
    "card_action_event",
    "message_event",
    "sample_state",
    "user_created",
]
