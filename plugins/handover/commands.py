"""``engine handover ...``: the scenario's command line (added through ``register_commands``)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from engine.sdk import Fail, Services, pass_app, run_async
from engine.sdk.feishu import open_client
from plugins.handover import models as m

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@click.group("handover")
def handover_group() -> None:
    """Doctors' shift handovers."""


@handover_group.command("stats")
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.option("--month", required=True, help="Month as YYYY-MM, e.g. 2026-11.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
@pass_app
@run_async
async def stats(state: object, org_id: str, month: str, out: Path) -> None:
    """Monthly handover statistics per department and site, from the Bitable records, as CSV."""
    from plugins.handover import rules
    from plugins.handover.activities import read_handover_records

    if not _MONTH.match(month):
        raise Fail(f"--month {month!r} is not a month", "write it as YYYY-MM, e.g. 2026-11")
    config = state.config()  # type: ignore[attr-defined]
    if org_id not in config.orgs:
        raise Fail(f"no organization {org_id!r} in {config.path}", f"known: {', '.join(config.orgs)}")
    if "handover" not in config.orgs[org_id].plugins:
        raise Fail(f"organization {org_id!r} does not enable the handover plugin", "add it to its plugins list")
    # only Bitable is read: a Feishu client without the Temporal connection of ``command_services``,
    # so the export works while the cluster is down
    async with open_client(config) as feishu:
        records = await read_handover_records(Services(config=config, feishu=feishu), org_id)
    rows = rules.monthly_stats(records, month)
    out.write_text(rules.stats_csv(rows), encoding="utf-8")
    click.echo(f"{len(rows)} rows ({len(records)} handover records read) written to {out}")


async def start_next_shift(services: Services, org_id: str, department: str, minutes: int | None,
                           now: datetime) -> tuple[m.ShiftPlan, bool]:
    """Start ``department``'s next shift now: the rota's plan of its next change, its form due at once and
    its change ``minutes`` later (the settings' ``lead_minutes`` when None). Returns the plan and whether it
    started (False: that shift's workflow already runs or ran, e.g. from its schedule).

    ``now`` is the organization's business time. Raises :class:`Fail` for an unknown department or a change
    without a rota.
    """
    from temporalio.common import WorkflowIDReusePolicy
    from temporalio.exceptions import WorkflowAlreadyStartedError

    from engine.sdk import UnknownContext, workflow_id
    from plugins.handover import rules
    from plugins.handover.activities import HandoverActivities, department_context
    from plugins.handover.config import HandoverSettings

    try:
        context = department_context(services, org_id, department)
    except (KeyError, UnknownContext):
        raise Fail(f"no handover department {department!r} in organization {org_id!r}",
                   "use a key of the handover settings' departments, e.g. --department icu") from None
    settings = context.settings_as(HandoverSettings)
    change = rules.next_change(now, settings.changes_of(department), context.zone).strftime("%H:%M")
    result = await HandoverActivities(services).plan_shift(m.PlanRequest(
        org=org_id, department=department, change=change, as_of=now, context=context))
    if result.plan is None:
        raise Fail(f"the {change} shift of {department!r} has no rota: {result.reason}",
                   "set workday_rota/holiday_rota for that change, or a dated rota line")
    plan = rules.started_now(result.plan, now, settings.lead_minutes if minutes is None else minutes,
                             settings.close_after_hours)
    assert services.temporal is not None  # command_services connects it
    try:
        await services.temporal.start_workflow(
            "handover.Shift", args=[plan, plan.locale or context.locale],
            id=workflow_id(org_id, m.SCENARIO, plan.key), task_queue=services.task_queue,
            # the shift's schedule (or a second start) finds this one and starts nothing
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        return plan, False
    return plan, True


@handover_group.command("start")
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.option("--department", required=True, help="Department id of the handover settings, e.g. icu.")
@click.option("--in", "minutes", type=click.IntRange(min=0), default=None,
              help="Minutes from now to the shift change (default: the settings' lead_minutes).")
@pass_app
@run_async
async def start(state: object, org_id: str, department: str, minutes: int | None) -> None:
    """Start the department's next shift now: its outgoing doctor gets the form at once."""
    from datetime import UTC

    from engine.sdk import command_services

    config = state.config()  # type: ignore[attr-defined]
    if org_id not in config.orgs:
        raise Fail(f"no organization {org_id!r} in {config.path}", f"known: {', '.join(config.orgs)}")
    if "handover" not in config.orgs[org_id].plugins:
        raise Fail(f"organization {org_id!r} does not enable the handover plugin", "add it to its plugins list")
    async with command_services(config) as services:
        now = services.context(org_id, m.SCENARIO).clock.now(datetime.now(UTC))
        plan, started = await start_next_shift(services, org_id, department, minutes, now)
    change = plan.change_at.astimezone(ZoneInfo(plan.timezone)).strftime("%H:%M")
    if not started:
        click.echo(f"{plan.department} {plan.shift}: that shift's handover already runs or ran; nothing started")
        return
    click.echo(f"{plan.department} {plan.shift}: form sent to {plan.giver}, handover to {plan.receiver} at {change}")
