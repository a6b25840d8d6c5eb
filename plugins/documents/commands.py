"""``engine documents ...``: the scenario's command line (added through ``register_commands``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from engine.sdk import Fail, Services, pass_app, run_async
from plugins.documents.models import Round, RoundInput


@click.group("documents")
def documents_group() -> None:
    """Rounds of documents and material between headquarters and the hospitals."""


def round_input(config: Any, org_id: str, round_id: str, kind: str, title: str, deadline: str, body: str = "",
                link: str = "", sites: tuple[str, ...] = (), sender: str = "") -> RoundInput:
    """The round the command line describes; :class:`Fail` naming the option and its fix when it is wrong."""
    from plugins.documents.config import ROUND_PATTERN

    if org_id not in config.orgs:
        raise Fail(f"no organization {org_id!r} in {config.path}", f"known: {', '.join(config.orgs)}")
    if "documents" not in config.orgs[org_id].plugins:
        raise Fail(f"organization {org_id!r} does not enable the documents plugin", "add it to its plugins list")
    if not ROUND_PATTERN.fullmatch(round_id):
        raise Fail(f"--id {round_id!r} is not a round id", "write DOC- and letters, digits or dashes, "
                                                           "e.g. DOC-2612-QUALITY")
    try:
        due = date.fromisoformat(deadline)
    except ValueError:
        raise Fail(f"--deadline {deadline!r} is not a date", "write it as YYYY-MM-DD, e.g. 2026-12-15") from None
    known = {s for site_id, site in config.orgs[org_id].config.sites.items() for s in (site_id, site.name) if s}
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise Fail(f"no site {', '.join(unknown)} in organization {org_id!r}", f"known: {', '.join(sorted(known))}")
    if not title.strip():
        raise Fail("--title is empty", "say what the round is about, as the hospitals will see it")
    return RoundInput(round_id=round_id.upper(), kind=kind, title=title.strip(), body=body, link=link,  # type: ignore[arg-type]
                      deadline=due, sites=list(sites), sender_open_id=sender)


async def send_round(services: Services, org_id: str, start: RoundInput, wait: float = 30.0) -> Round | None:
    """Start the round's workflow and return its state once its cards are out (or it was refused); None
    when that takes over ``wait`` seconds. :class:`Fail` when a round of that id was sent before."""
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from engine.sdk import workflow_id

    assert services.temporal is not None  # command_services connects it
    try:
        handle = await services.temporal.start_workflow(
            "documents.Round", start, id=workflow_id(org_id, "documents", start.round_id),
            task_queue=services.task_queue, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        raise Fail(f"round {start.round_id} was sent already", "give the new round its own --id") from None
    return await _when_sent(handle, wait)


async def _when_sent(handle: Any, wait: float) -> Round | None:
    import asyncio

    from temporalio.service import RPCError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        try:
            found = Round.model_validate(await handle.query("state"))
        except RPCError:
            found = None  # not picked up by a worker yet
        if found is not None and (found.status == "refused"
                                  or (found.status != "new" and all(h.cards for h in found.hospitals))):
            return found
        await asyncio.sleep(0.3)
    return None


@documents_group.command("send")
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.option("--id", "round_id", required=True, help="The round's id, DOC-..., e.g. DOC-2612-QUALITY.")
@click.option("--kind", type=click.Choice(["read", "upload"]), default="read", show_default=True,
              help="read: a document to acknowledge; upload: material each hospital sends back.")
@click.option("--title", required=True, help="What the round is about, as the hospitals see it.")
@click.option("--deadline", required=True, help="The last day an answer is on time, YYYY-MM-DD.")
@click.option("--body", default="", help="A few lines of instructions.")
@click.option("--link", default="", help="The document's (or the form's template's) link.")
@click.option("--site", "sites", multiple=True, help="A hospital (site id or name); repeat; default: all.")
@click.option("--from", "sender", default="", help="The headquarters person's open_id (gets the status card).")
@pass_app
@run_async
async def send(state: object, org_id: str, round_id: str, kind: str, title: str, deadline: str, body: str,
               link: str, sites: tuple[str, ...], sender: str) -> None:
    """Send a round to the hospitals' responsible people now; print who got cards."""
    from engine.sdk import command_services

    config = state.config()  # type: ignore[attr-defined]
    start = round_input(config, org_id, round_id, kind, title, deadline, body, link, sites, sender)
    async with command_services(config) as services:
        sent = await send_round(services, org_id, start)
    if sent is None:
        click.echo(f"round {start.round_id} started; its cards are not out yet (is the worker running?)")
        return
    if sent.status == "refused":
        reason = sent.history[-1].note if sent.history else "?"
        raise Fail(f"round {start.round_id} was not sent: {reason}",
                   "set the hospitals' responsible_open_ids (site settings), or name other --site")
    for h in sent.hospitals:
        click.echo(f"→ {h.name}: card to {', '.join(h.responsible)}")
    click.echo(f"round {start.round_id} sent: {kind}, deadline {start.deadline}; "
               f"status: @bot {start.round_id} status")
