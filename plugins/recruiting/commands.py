"""``engine recruiting report --org X --month 2026-11 --out FILE.csv``: the monthly HR report as CSV.

Computed from the recorded Bitable rows by the same pure function the scheduled report uses, so the CSV
and the card agree. Figures "as of" now (overdue SLAs, open risks) use the organization's business time
when the command runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engine.sdk import csvexport

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def write_csv(rows: list[dict[str, Any]], out: Path) -> None:
    from .rules import REPORT_COLUMNS

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as handle:  # BOM: Excel opens Chinese text right
        writer = csvexport.DictWriter(handle, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def add_commands(cli: Any) -> None:
    import click

    from engine.sdk import Fail, pass_app, run_async

    @cli.group(name="recruiting")
    def recruiting() -> None:
        """Recruiting: the monthly HR report."""

    @recruiting.command(name="report")
    @click.option("--org", "org_id", required=True, help="Organization id.")
    @click.option("--month", required=True, help="Month to report, YYYY-MM.")
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
    @pass_app
    @run_async
    async def report(state: Any, org_id: str, month: str, out: Path) -> None:
        """Write the month's figures per hospital and for the group (site "*") as CSV."""
        from datetime import UTC, datetime

        from engine.sdk import FeishuError, Services, UnknownContext, resolve_site_context
        from engine.sdk.feishu import open_client

        from .activities import report_for
        from .models import SCENARIO
        from .rules import report_csv_rows

        if not _MONTH.match(month):
            raise click.BadParameter("expected YYYY-MM, e.g. 2026-11", param_hint="--month")
        config = state.config()
        try:
            org = config.org(org_id)
            site = resolve_site_context(org, SCENARIO)
        except (KeyError, UnknownContext) as error:
            raise Fail(f"no recruiting organization {org_id!r}", "check --org against the config's organizations "
                       "and that it enables recruiting") from error
        # the Feishu client only: the report reads tables and needs no Temporal connection
        async with open_client(config) as client:
            try:
                result = await report_for(Services(config=config, feishu=client), org.id, month,
                                          site.clock.now(datetime.now(UTC)))
            except FeishuError as error:
                raise Fail(f"the recruiting tables could not be read: {error}",
                           "check the app's Bitable permission and the network, then run it again") from error
        rows = report_csv_rows(result)
        write_csv(rows, out)
        click.echo(f"{out}: {len(rows) - 1} hospital(s) and the group for {month}")
