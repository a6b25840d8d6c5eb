"""``engine handover ...``: the scenario's command line (added through ``register_commands``)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from engine.sdk import Fail, Services, pass_app, run_async
from engine.sdk.feishu import open_client

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
