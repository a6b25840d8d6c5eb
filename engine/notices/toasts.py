"""The engine's own toasts: short answers to a card press that no scenario's workflow could give.

Users see their own language only: each toast exists in every locale the engine speaks (checked when this
module loads), and the reason (which workflow, which error) goes to the log, never into the toast.
"""

from __future__ import annotations

from engine.texts import Texts

TOASTS = Texts({
    "zh_CN": {
        # the press names a workflow that is no longer there (the item was closed, or the card is old)
        "card_expired": "这张卡片已失效，请以最新消息为准。",
    },
    "en_US": {
        "card_expired": "This card is no longer active; please use the latest message.",
    },
})


def toast(name: str, locale: str | None) -> str:
    """The toast ``name`` in ``locale`` (the default language's when it has none of its own)."""
    return TOASTS(name, locale)
