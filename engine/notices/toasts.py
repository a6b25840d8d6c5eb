"""The engine's own toasts: short answers to a card press that no scenario's workflow could give.

Users see their own language only: each toast exists in every locale the engine speaks, and the reason
(which workflow, which error) goes to the log, never into the toast.
"""

from __future__ import annotations

TOASTS: dict[str, dict[str, str]] = {
    # the press names a workflow that is no longer there (the item was closed, or the card is old)
    "card_expired": {
        "zh_CN": "这张卡片已失效，请以最新消息为准。",
        "en_US": "This card is no longer active; please use the latest message.",
    },
}


def toast(name: str, locale: str | None) -> str:
    """The toast ``name`` in ``locale`` (the organization's default locale when it has none of its own)."""
    texts = TOASTS[name]
    return texts.get(locale or "zh_CN") or texts["zh_CN"]
