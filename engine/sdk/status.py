"""Status questions ("@bot <key> 状态" / "<key> status") and their replies, the same way in every scenario.

:func:`status_question` reads the question out of a message's text (mentions already removed by the
ingress); :func:`status_reply` turns it into the action that queries the key's workflow and replies in
the asker's locale: the language the question was asked in ("状态" → zh_CN, "status" → en_US), else
the locale the caller passes (the site's or organization's). Feishu's message events carry no user
locale, and routing must stay free of I/O, so the question's own language is the best signal there is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine import actions
from engine.events import MessageReceived

__all__ = ["STATUS_WORDS", "StatusQuestion", "message_key", "question_locale", "status_question", "status_reply"]

# the word asked → the locale to answer in
STATUS_WORDS: dict[str, str] = {"状态": "zh_CN", "狀態": "zh_CN", "进度": "zh_CN", "status": "en_US", "state": "en_US"}
_PUNCTUATION = "?？!！。.,，:："


@dataclass(frozen=True)
class StatusQuestion:
    """The key asked about and the locale of the question (``None`` when only the key was sent)."""

    key: str
    locale: str | None = None


def status_question(text: str, key_pattern: str | re.Pattern[str]) -> StatusQuestion | None:
    """The status question in ``text``, or None when the text asks something else.

    Accepted: ``"<key> 状态"``, ``"状态 <key>"``, ``"<key> status"``, ``"status <key>"`` and a bare
    ``"<key>"`` (trailing "?" allowed); ``key_pattern`` must match the whole key (e.g. ``r"RD-[A-Z]+-\\d+"``).
    Words starting with "@" (unresolved mentions) are ignored. Keys are returned as written.
    """
    pattern = re.compile(key_pattern) if isinstance(key_pattern, str) else key_pattern
    words = [w.strip(_PUNCTUATION) for w in text.split() if not w.startswith("@")]
    words = [w for w in words if w]
    keys = [w for w in words if pattern.fullmatch(w)]
    rest = [w.lower() for w in words if not pattern.fullmatch(w)]
    if len(keys) != 1 or len(rest) > 1:
        return None
    if not rest:
        return StatusQuestion(key=keys[0])
    locale = STATUS_WORDS.get(rest[0])
    return StatusQuestion(key=keys[0], locale=locale) if locale else None


def question_locale(text: str, key: str = "") -> str | None:
    """The locale a question about ``key`` was asked in: zh_CN when the rest of ``text`` has Chinese
    characters, en_US when it has Latin letters, None when only the key (or nothing) was written.

    For scenarios with their own question words (``"CT-0012 有效期?"``); :func:`status_question` gives
    the locale of the standard status words itself.
    """
    rest = " ".join(w for w in text.split() if not w.startswith("@"))
    if key:
        rest = re.sub(re.escape(key), " ", rest, flags=re.IGNORECASE)
    if any("\u4e00" <= ch <= "\u9fff" for ch in rest):
        return "zh_CN"
    if any(ch.isascii() and ch.isalpha() for ch in rest):
        return "en_US"
    return None


def status_reply(event: MessageReceived, *, scenario: str, key: str, template: str, missing_template: str,
                 locale: str | None, context: dict[str, Any] | None = None,
                 query: str = "state") -> actions.QueryWorkflow:
    """Query ``key``'s workflow and reply with ``template`` (its answer is ``result`` in the template).

    When no workflow runs under ``key``, ``missing_template`` is sent instead. Both replies go to the
    asker's message in ``locale`` and are deduplicated on its message id.
    """
    base = {"key": key, **(context or {})}
    return actions.QueryWorkflow(
        scenario=scenario, key=key, query=query,
        reply=actions.Reply(template=template, context=base, message_id=event.message_id, locale=locale),
        reply_missing=actions.Reply(template=missing_template, context=base, message_id=event.message_id,
                                    locale=locale))


def message_key(prefix: str, event: MessageReceived) -> str:
    """A workflow key for one request made by message: the same when Feishu pushes the message again
    under a new event id (Feishu's guidance is to deduplicate messages on ``message_id``).

    Start the workflow with ``StartWorkflow(..., once=True)`` so a redelivery after it finished does not
    run it again.
    """
    if not event.message_id:
        raise ValueError("a message event without a message_id cannot be deduplicated")
    return f"{prefix}:{event.message_id}"
