"""``engine send``: act as a Feishu user of a running ``engine dev``, from the command line.

Each command asks dev's stand-in to push an event the way Feishu does (signed, through the ingress, as
a user of the chosen organization's tenant), then prints what the bot answered: the card press's toast
and the messages that reached the stand-in's outbox in the seconds after. Dev is found through its
session file (:mod:`engine.runtime.devsession`), so nothing needs configuring.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click
import httpx

from engine.cli import CliState, Fail, _config_option, pass_app

# How long to watch the outbox after an event: the bot's answers come within a second or two; the
# watch ends once nothing new arrived for QUIET seconds, or at WATCH.
WATCH, QUIET = 15.0, 2.0


@click.group()
def send() -> None:
    """Act as a Feishu user of the running `engine dev`: send a message, press a card button, edit a row."""


def _standin(state: CliState, org: str | None) -> tuple[str, str, str]:
    """(stand-in URL, organization id, its tenant key) of the running dev of the config."""
    from engine.runtime.devsession import running

    config = state.config()
    session = running(config)
    if session is None:
        raise Fail(f"no `engine dev` of {config.path} is running", "start it with `make dev`, then send again")
    if session.standin_url is None:
        raise Fail("this engine dev talks to a real Feishu app, not the stand-in",
                   "send from the Feishu client instead")
    org_id = org or next(iter(config.orgs))
    if org_id not in config.orgs:
        raise Fail(f"no organization {org_id!r} in {config.path}", f"one of: {', '.join(config.orgs)}")
    return session.standin_url, org_id, config.orgs[org_id].tenant_key or "t_standin"


def _post(url: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """POST ``body`` to the stand-in's deliver endpoint; (its answer, the outbox length before)."""
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            before = len(http.get("/_standin/outbox").json())
            response = http.post("/_standin/deliver", json=body)
    except httpx.HTTPError as error:
        raise Fail(f"the stand-in at {url} did not answer: {error}", "is `engine dev` still running?") from None
    if response.status_code != 200:
        raise Fail(f"the stand-in refused the event: {response.text[:300]}", "check the values given")
    return response.json(), before


def _show_answers(url: str, before: int) -> None:
    """Print the outbox's new messages until the bot has been quiet for a moment."""
    deadline, quiet_since, seen = time.monotonic() + WATCH, time.monotonic(), before
    with httpx.Client(base_url=url, timeout=10) as http:
        while time.monotonic() < deadline and time.monotonic() - quiet_since < QUIET:
            time.sleep(0.3)
            outbox = http.get("/_standin/outbox").json()
            for item in outbox[seen:]:
                chat = item["chat_name"] or item["chat_id"]
                where = f"reply in {chat}" if item["reply_to"] else (item["chat_name"] or item["to"] or chat)
                text = (item["text"] or "").strip() or "(card)"
                click.echo(f"→ {where}: " + text.replace("\n", "\n    "))
                for label, value in _buttons(item.get("card")):
                    click.echo(f"    [{label}]  engine send press '{json.dumps(value, ensure_ascii=False)}' "
                               f"--message {item['message_id']}")
            if len(outbox) > seen:
                seen, quiet_since = len(outbox), time.monotonic()
    if seen == before:
        click.echo("(no message from the bot; `engine workflows list` and dev's log say what happened)")
    click.echo(f"outbox: {url}/_standin/")


def _buttons(card: Any) -> list[tuple[str, Any]]:
    """(label, value) of every button in a card (JSON 1.0 or 2.0), in order."""
    found: list[tuple[str, Any]] = []
    if isinstance(card, dict):
        if card.get("tag") == "button":
            # JSON 1.0 carries the value on the button, 2.0 in a callback behaviour
            values = [card["value"]] if "value" in card else [
                b["value"] for b in card.get("behaviors") or [] if isinstance(b, dict) and b.get("type") == "callback"]
            text = card.get("text")
            label = text.get("content", "") if isinstance(text, dict) else str(text or "")
            found += [(label, value) for value in values[:1]]
            return found
        for item in card.values():
            found += _buttons(item)
    elif isinstance(card, list):
        for item in card:
            found += _buttons(item)
    return found


@send.command("message")
@_config_option
@click.argument("text")
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@click.option("--chat", "chat_id", default="oc_try", show_default=True, help="Group chat id.")
@click.option("--p2p", is_flag=True, help="A direct message to the bot instead of a group message.")
@click.option("--from", "sender", default="ou_try", show_default=True, help="The sender's open_id.")
@click.option("--no-mention", is_flag=True, help="Do not @mention the bot (a group message it should ignore).")
@pass_app
def send_message(state: CliState, text: str, org: str | None, chat_id: str, p2p: bool, sender: str,
                 no_mention: bool) -> None:
    """Send TEXT to the bot, as Feishu pushes `im.message.receive_v1`."""
    url, _, tenant = _standin(state, org)
    message = {"text": text, "chat_id": f"oc_p2p_{sender}" if p2p else chat_id, "sender_open_id": sender,
               "chat_type": "p2p" if p2p else "group", "mentions_bot": not (no_mention or p2p)}
    answer, before = _post(url, {"tenant_key": tenant, "message": message, "wait": True, "retries": []})
    if not answer.get("acknowledged", True):
        raise Fail(f"the ingress did not acknowledge the message: {json.dumps(answer)[:300]}", "see dev's log")
    _show_answers(url, before)


@send.command("press")
@_config_option
@click.argument("value")
@click.option("--message", "message_id", default=None,
              help="The card's message_id (default: the newest card with a button of this value).")
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@click.option("--from", "operator", default="ou_try", show_default=True, help="The presser's open_id.")
@click.option("--form", default=None, help="Form values as JSON, for a form's submit button.")
@pass_app
def send_press(state: CliState, value: str, message_id: str | None, org: str | None, operator: str,
               form: str | None) -> None:
    """Press a card button whose `value` is VALUE (JSON), as Feishu pushes `card.action.trigger`."""
    url, _, tenant = _standin(state, org)
    try:
        press: dict[str, Any] = {"value": json.loads(value), "operator_open_id": operator}
        if form:
            press["form_value"] = json.loads(form)
    except json.JSONDecodeError as error:
        raise Fail(f"not JSON: {error}", """quote it: '{"op": "ack"}'""") from None
    press["message_id"] = message_id or _card_with(url, press["value"])
    answer, before = _post(url, {"tenant_key": tenant, "card_action": press})
    toast = ((answer.get("answer") or {}).get("toast") or {}).get("content")
    click.echo(f"toast: {toast}" if toast else "(answered without a toast)")
    _show_answers(url, before)


def _card_with(url: str, value: Any) -> str:
    """The message_id of the newest card in the outbox that has a button of ``value``."""
    with httpx.Client(base_url=url, timeout=10) as http:
        outbox = http.get("/_standin/outbox").json()
    for item in reversed(outbox):
        if any(found == value for _, found in _buttons(item.get("card"))):
            return str(item["message_id"])
    raise Fail("no card in the outbox has a button with this value",
               "copy the value from a card's line that `engine send` printed, or pass --message")


@send.command("row")
@_config_option
@click.argument("app_token")
@click.argument("table_id")
@click.argument("record_id")
@click.option("--action", type=click.Choice(["record_added", "record_edited", "record_deleted"]),
              default="record_edited", show_default=True)
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@click.option("--from", "operator", default="ou_try", show_default=True, help="The editor's open_id.")
@pass_app
def send_row(state: CliState, app_token: str, table_id: str, record_id: str, action: str, org: str | None,
             operator: str) -> None:
    """Say a Bitable row changed, as Feishu pushes `drive.file.bitable_record_changed_v1` (edit the row in
    the stand-in's state first: `POST /_standin/state`)."""
    url, _, tenant = _standin(state, org)
    change = {"app_token": app_token, "table_id": table_id, "record_id": record_id, "action": action,
              "operator_open_id": operator}
    answer, before = _post(url, {"tenant_key": tenant, "record_changed": change, "wait": True, "retries": []})
    if not answer.get("acknowledged", True):
        raise Fail(f"the ingress did not acknowledge the change: {json.dumps(answer)[:300]}", "see dev's log")
    _show_answers(url, before)
