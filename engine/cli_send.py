"""``engine send``: act as a Feishu user of a running ``engine dev``, from the command line.

Each command asks dev's stand-in to push an event the way Feishu does (signed, through the ingress, as
a user of the chosen organization's tenant), then prints what the bot answered: the card press's toast
and the messages that reached the stand-in's outbox in the seconds after. Dev is found through its
session file (:mod:`engine.runtime.devsession`), so nothing needs configuring.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from typing import Any

import click
import httpx

from engine.cli import CliState, Fail, _config_option, pass_app, run_async

# How long to watch the outbox after an event: the bot's answers come within a second or two; the
# watch ends once nothing new arrived for QUIET seconds, or at WATCH.
WATCH, QUIET = 15.0, 2.0


@click.group()
def send() -> None:
    """Act as a Feishu user of the running `engine dev`: send a message, press a card button, edit a row."""


def _standin(state: CliState, org: str | None) -> tuple[str, str | None, str]:
    """(stand-in URL, the organization to name in printed commands, its tenant key) of the running dev of
    the config; the organization is ``None`` when it is the config's first (the default)."""
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
    shown = None if org_id == next(iter(config.orgs)) else org_id
    return session.standin_url, shown, config.orgs[org_id].tenant_key or "t_standin"


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


def _program() -> str:
    """How the reader runs this command: ``engine`` when that is what PATH finds, else the path they typed
    (``.venv/bin/engine``), so a printed press command runs as pasted."""
    typed = sys.argv[0] if sys.argv else ""
    if os.path.basename(typed) != "engine" or not os.path.dirname(typed):
        return "engine"
    found = shutil.which("engine")
    return "engine" if found and os.path.samefile(found, typed) else typed


def _show_answers(url: str, before: int, org: str | None = None, answered: bool = False) -> None:
    """Print the outbox's new messages until the bot has been quiet for a moment; each card button as a
    ready press command (with ``--org`` when the event was not the default organization's); ``answered``:
    the event already got its answer (a toast), so silence is no sign of trouble."""
    press = f"{_program()} send press" + (f" --org {org}" if org else "")
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
                    click.echo(f"    [{label}]  {press} '{json.dumps(value, ensure_ascii=False)}' "
                               f"--message {item['message_id']}")
            if len(outbox) > seen:
                seen, quiet_since = len(outbox), time.monotonic()
    if seen == before and not answered:
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
    url, shown, tenant = _standin(state, org)
    message = {"text": text, "chat_id": f"oc_p2p_{sender}" if p2p else chat_id, "sender_open_id": sender,
               "chat_type": "p2p" if p2p else "group", "mentions_bot": not (no_mention or p2p)}
    answer, before = _post(url, {"tenant_key": tenant, "message": message, "wait": True, "retries": []})
    if not answer.get("acknowledged", True):
        raise Fail(f"the ingress did not acknowledge the message: {json.dumps(answer)[:300]}", "see dev's log")
    _show_answers(url, before, shown)


@send.command("file")
@_config_option
@click.argument("name")
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@click.option("--from", "sender", default="ou_try", show_default=True, help="The sender's open_id.")
@click.option("--size", type=click.IntRange(min=1, max=30 * 1024 * 1024), default=1024, show_default=True,
              help="The file's size in bytes (its content is not kept).")
@pass_app
def send_file(state: CliState, name: str, org: str | None, sender: str, size: int) -> None:
    """Send the bot a file named NAME in a direct chat, as Feishu pushes `im.message.receive_v1`."""
    url, shown, tenant = _standin(state, org)
    message = {"file_name": name, "sender_open_id": sender, "size": size}
    answer, before = _post(url, {"tenant_key": tenant, "file_message": message, "wait": True, "retries": []})
    if not answer.get("acknowledged", True):
        raise Fail(f"the ingress did not acknowledge the file: {json.dumps(answer)[:300]}", "see dev's log")
    _show_answers(url, before, shown)


@send.command("press")
@_config_option
@click.argument("value")
@click.option("--message", "message_id", default=None,
              help="The card's message_id (default: the newest card with a button of this value).")
@click.option("--org", default=None,
              help="Organization id (default: the value's \"org\", else the only one with the value's "
                   "plugin, else the config's first).")
@click.option("--from", "operator", default=None,
              help="The presser's open_id (default: the person the card was sent to; ou_try for a group's card).")
@click.option("--form", default=None, help="Form values as JSON, for a form's submit button.")
@pass_app
def send_press(state: CliState, value: str, message_id: str | None, org: str | None, operator: str | None,
               form: str | None) -> None:
    """Press a card button whose `value` is VALUE (JSON), as Feishu pushes `card.action.trigger`.

    VALUE may leave keys out: the button pressed is the newest card's (or --message's) whose value has
    every key given, e.g. '{"op": "approve"}' presses the newest approve button, with its full value.
    """
    try:
        wanted: Any = json.loads(value)
        form_value = json.loads(form) if form else None
    except json.JSONDecodeError as error:
        raise Fail(f"not JSON: {error}", """quote it: '{"op": "ack"}'""") from None
    if org is None:
        org = _org_of(state, wanted)
    url, shown, tenant = _standin(state, org)
    found_id, full, recipient = _card_with(url, wanted, message_id)
    # a person presses the buttons of the card they were sent
    press: dict[str, Any] = {"value": full, "operator_open_id": operator or recipient or "ou_try",
                             "message_id": found_id}
    if form_value is not None:
        press["form_value"] = form_value
    answer, before = _post(url, {"tenant_key": tenant, "card_action": press})
    toast = ((answer.get("answer") or {}).get("toast") or {}).get("content")
    click.echo(f"toast: {toast}" if toast else "(answered without a toast)")
    _show_answers(url, before, shown, answered=bool(toast))


def _org_of(state: CliState, value: Any) -> str | None:
    """The organization a button's value belongs to: its ``"org"``, else the only one enabling the plugin
    its ``"scenario"`` (or its ``op``'s prefix, ``handover.submit``) names; ``None`` when that says nothing."""
    if not isinstance(value, dict):
        return None
    orgs = state.config().orgs
    if isinstance(value.get("org"), str) and value["org"] in orgs:
        return str(value["org"])
    op = value.get("op")
    plugin = value.get("scenario") or (op.partition(".")[0] if isinstance(op, str) and "." in op else None)
    enabling = [org_id for org_id, org in orgs.items() if plugin in org.plugins]
    return enabling[0] if len(enabling) == 1 else None


def _covers(button: Any, wanted: Any) -> bool:
    """Whether a button's value is ``wanted`` or, for objects, has every key of ``wanted`` with its value."""
    if isinstance(button, dict) and isinstance(wanted, dict):
        return all(key in button and button[key] == item for key, item in wanted.items())
    return bool(button == wanted)


def _card_with(url: str, wanted: Any, message_id: str | None) -> tuple[str, Any, str | None]:
    """(message_id, full value, the open_id it was sent to or None) of the button to press: on the card
    ``message_id``, else on the newest card of the outbox; a button whose value is exactly ``wanted``
    first, else one whose value has its keys."""
    with httpx.Client(base_url=url, timeout=10) as http:
        outbox = http.get("/_standin/outbox").json()
    cards = [item for item in reversed(outbox) if message_id in (None, item["message_id"])]
    for match in (lambda found: found == wanted, lambda found: _covers(found, wanted)):
        for item in cards:
            for _, found in _buttons(item.get("card")):
                if match(found):
                    return str(item["message_id"]), found, _recipient(item)
    if message_id is not None:  # a value no button shows (a hand-made press): sent as given
        return message_id, wanted, _recipient(cards[0]) if cards else None
    raise Fail("no card in the outbox has a button with this value",
               "copy the value from a card's line that `engine send` printed, or pass --message")


def _recipient(item: dict[str, Any]) -> str | None:
    """The open_id a message of the outbox was sent to (``to`` is ``name (ou_...)`` or the id), or None
    for a group's message."""
    found = re.search(r"\b(ou_\w+)", str(item.get("to") or ""))
    return found.group(1) if found else None


@send.command("row")
@_config_option
@click.argument("app_token")
@click.argument("table_id")
@click.argument("record_id")
@click.option("--set", "cells", multiple=True, metavar="FIELD=VALUE",
              help='Set a cell first (repeatable); VALUE is read as JSON when it is JSON (3, true, '
                   '[{"id": "ou_..."}], {"$days_from_today": 7} for a date), else as text.')
@click.option("--action", type=click.Choice(["record_added", "record_edited", "record_deleted"]), default=None,
              help="What happened to the row (default: record_added for a new row, else record_edited).")
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@click.option("--from", "operator", default="ou_try", show_default=True, help="The editor's open_id.")
@pass_app
def send_row(state: CliState, app_token: str, table_id: str, record_id: str, cells: tuple[str, ...],
             action: str | None, org: str | None, operator: str) -> None:
    """Change a Bitable row of the stand-in (`--set`) and say so, as Feishu pushes
    `drive.file.bitable_record_changed_v1`; without `--set`, only say the row changed."""
    url, shown, tenant = _standin(state, org)
    added = _edit_row(url, app_token, table_id, record_id, dict(_cell(item) for item in cells))
    change = {"app_token": app_token, "table_id": table_id, "record_id": record_id,
              "action": action or ("record_added" if added else "record_edited"), "operator_open_id": operator}
    answer, before = _post(url, {"tenant_key": tenant, "record_changed": change, "wait": True, "retries": []})
    if not answer.get("acknowledged", True):
        raise Fail(f"the ingress did not acknowledge the change: {json.dumps(answer)[:300]}", "see dev's log")
    _show_answers(url, before, shown)


def _cell(item: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` as (field, value): JSON when VALUE is JSON, else the text."""
    name, sep, text = item.partition("=")
    if not sep or not name.strip():
        raise Fail(f"--set {item!r} is not FIELD=VALUE", "e.g. --set 阶段=已筛选")
    try:
        return name.strip(), json.loads(text)
    except json.JSONDecodeError:
        return name.strip(), text


def _edit_row(url: str, app_token: str, table_id: str, record_id: str, cells: dict[str, Any]) -> bool:
    """Set ``cells`` of the stand-in's row (creating it when new); whether the row is new.

    The stand-in's state endpoint replaces a record it is given, so the row's other cells are sent along.
    """
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            tables = http.get("/_standin/state").json().get("bitable", {})
            table = tables.get(app_token, {}).get(table_id)
            if table is None:
                known = [f"{app} {tid}" for app, ts in tables.items() for tid in ts]
                raise Fail(f"the stand-in has no table {app_token} {table_id}",
                           f"one of: {', '.join(known) or 'none (no seed loaded)'}")
            records = table.get("records", [])
            rows = {r["record_id"]: r for r in (records.values() if isinstance(records, dict) else records)}
            row = rows.get(record_id)
            if row is None and not cells:
                raise Fail(f"no row {record_id} in {app_token} {table_id}",
                           "give its cells with --set FIELD=VALUE to add it, or pick one of: "
                           + ", ".join(list(rows)[:10]))
            if cells:
                record = {"record_id": record_id, "fields": {**(row or {}).get("fields", {}), **cells},
                          "last_modified_time": int(time.time() * 1000)}
                if row is not None:
                    record["created_time"] = row.get("created_time")
                response = http.post("/_standin/state", json={"bitable": {app_token: {table_id: {
                    "name": table.get("name", table_id), "records": [record]}}}})
                if response.status_code != 200:
                    raise Fail(f"the stand-in refused the row: {response.text[:300]}", "check the --set values")
    except httpx.HTTPError as error:
        raise Fail(f"the stand-in at {url} did not answer: {error}", "is `engine dev` still running?") from None
    return row is None


@send.command("event")
@_config_option
@click.argument("event_type")
@click.argument("payload", default="{}")
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@pass_app
@run_async
async def send_event(state: CliState, event_type: str, payload: str, org: str | None) -> None:
    """Raise an engine event EVENT_TYPE with PAYLOAD (JSON) in the organization, as a plugin's command or a
    test does (e.g. the example plugin's `checkup.registered`): the enabled plugins' route_event hooks
    turn it into actions on the running engine's workflows."""
    import uuid
    from datetime import UTC, datetime

    from engine.events import EngineEvent
    from engine.runtime.app import EngineApp
    from engine.runtime.router import Router, feishu_reply_sender
    from engine.runtime.worker import connect_config

    config = state.config()
    org_id = org or next(iter(config.orgs))
    if org_id not in config.orgs:
        raise Fail(f"no organization {org_id!r} in {config.path}", f"one of: {', '.join(config.orgs)}")
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as error:
        raise Fail(f"PAYLOAD is not JSON: {error}", """quote it: '{"device": "MRI-7"}'""") from None
    if not isinstance(data, dict):
        raise Fail("PAYLOAD must be a JSON object", """e.g. '{"device": "MRI-7"}'""")
    client = await connect_config(config)
    app = EngineApp(config=config, plugins=state.plugins)
    router = Router(client, state.plugins, task_queue=config.temporal.task_queue, send_reply=feishu_reply_sender(app))
    # the wall clock: the moment the event is raised, as the engine stamps its own events
    event = EngineEvent(event_id=f"cli-{uuid.uuid4().hex}", event_type=event_type, create_time=datetime.now(UTC),
                        payload=data)
    result = await router.dispatch(event, config.orgs[org_id])
    if not result.effects:
        raise Fail(f"no enabled scenario of {org_id} acts on {event_type!r}",
                   "check the event type and that the plugin is enabled for the organization")
    click.echo(f"{event_type}: {result.effects} action(s) carried out in {org_id}")


@send.command("approval")
@_config_option
@click.argument("action", type=click.Choice(["approve", "reject", "transfer", "cancel"]))
@click.option("--from", "open_id", required=True,
              help="The approver's open_id (to cancel: the applicant's, who withdraws it).")
@click.option("--instance", "instance_code", default=None,
              help="The approval instance (default: the newest pending one --from may act on).")
@click.option("--to", "to", default=None, help="transfer: the new approver's open_id.")
@click.option("--comment", default="", help="The approver's comment.")
@click.option("--org", default=None, help="Organization id (default: the config's first).")
@pass_app
def send_approval(state: CliState, action: str, open_id: str, instance_code: str | None, to: str | None,
                  comment: str, org: str | None) -> None:
    """Decide a Feishu approval as its approver does in Feishu's approval app (or withdraw it as its
    applicant); Feishu then pushes the `approval_instance` event to the engine."""
    url, shown, _ = _standin(state, org)
    body = {"action": action, "open_id": open_id, "to": to or "", "comment": comment,
            **({"instance_code": instance_code} if instance_code else {})}
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            before = len(http.get("/_standin/outbox").json())
            response = http.post("/_standin/approval/decide", json=body)
    except httpx.HTTPError as error:
        raise Fail(f"the stand-in at {url} did not answer: {error}", "is `engine dev` still running?") from None
    if response.status_code != 200:
        raise Fail(f"the stand-in refused the decision: {response.text[:300]}",
                   "check --from (whose task it is) or name the approval with --instance")
    answer = response.json()
    click.echo(f"approval {answer['instance_code']}: {answer['status']}")
    _show_answers(url, before, shown, answered=True)
