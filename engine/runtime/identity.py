"""The bot's own identity, learnt once when a process starts: how a mention of the bot is recognised.

Feishu writes "@bot" into a message as a placeholder (``@_user_1``) and lists who it stands for in
``mentions``, by open_id. Only the bot's open_id tells a command to this bot from a mention of anyone
else, and Feishu gives it: ``GET /open-apis/bot/v3/info`` answers
``{"code": 0, "bot": {"open_id": "ou_...", "app_name": ..., "activate_status": ...}}`` to the tenant
token ("获取机器人信息", Feishu Open Platform). ``[feishu] bot_open_id`` overrides it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.feishu.errors import FeishuError

if TYPE_CHECKING:
    from engine.runtime.app import EngineApp

log = logging.getLogger(__name__)

BOT_OPEN_ID = "bot_open_id"
"""The key of ``EngineApp.extras`` that holds the bot's open_id once known."""
PATIENCE = 60.0
"""Seconds a starting process keeps asking while Feishu answers with a retryable failure."""


class BotIdentityError(Exception):
    """Feishu would not say who the bot is: ``str()`` says why, ``hint`` names the config file and the fix."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


async def learn_bot_open_id(app: EngineApp, *, patience: float = PATIENCE,
                            say: Callable[[str], None] | None = None) -> str:
    """The bot's open_id, kept in ``app.extras["bot_open_id"]``; asked of Feishu unless already known.

    Order: ``[feishu] bot_open_id`` (an override), then an identity this process already holds (the
    local stand-in's, or one learnt before), then ``GET /open-apis/bot/v3/info``, asked again with backoff
    for up to ``patience`` seconds while the failure is retryable (timeouts, 5xx, rate limits).

    Raises :class:`BotIdentityError` when no Feishu app is configured, Feishu refuses (wrong app
    secret, bot not enabled) or stays unreachable, or answers without an open_id.
    """
    feishu = app.config.feishu
    known = (feishu.bot_open_id if feishu is not None else None) or app.extras.get(BOT_OPEN_ID)
    if known:
        app.extras[BOT_OPEN_ID] = known
        return str(known)

    fix = (f"check [feishu] app_id and app_secret in {app.config.path} and that the app's bot is enabled, "
           "or set [feishu] bot_open_id there")
    try:
        client = app.feishu
    except ValueError as error:  # no app id or secret at all
        raise BotIdentityError(str(error), fix) from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.5
    while True:
        try:
            bot = await client.bot_info()
            break
        except FeishuError as error:
            if not error.retryable or loop.time() + delay > deadline:
                raise BotIdentityError(f"Feishu did not say who the bot is (GET /open-apis/bot/v3/info: "
                                       f"{error})", fix) from None
            log.warning("Feishu did not say who the bot is (%s); asking again in %.1f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    open_id = bot.get("open_id")
    if not isinstance(open_id, str) or not open_id:
        raise BotIdentityError("Feishu's bot info (GET /open-apis/bot/v3/info) has no open_id", fix)
    app.extras[BOT_OPEN_ID] = open_id
    if say is not None:
        say(f"  bot               {bot.get('app_name') or '(no name)'} ({open_id})")
    return open_id
