"""``engine recruiting report --org X --month 2026-11 --out FILE.csv``: the monthly recruiting figures as CSV;
``engine recruiting hr-report ...``: the HR monthly report (people, operations, talent development, risk
warnings) as CSV; ``engine recruiting snapshot --org X --month 2026-11``: record the contact directory as a
month's staff snapshot (the month before the first report).

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


def write_hr_csv(rows: list[dict[str, Any]], out: Path, settings: Any) -> None:
    """The HR monthly report's rows (``hr_rules.hr_export_rows``) as CSV, columns ``hr_rules.hr_columns``."""
    from .hr_rules import hr_columns

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8-sig", newline="") as handle:  # BOM: Excel opens Chinese text right
        writer = csvexport.DictWriter(handle, fieldnames=hr_columns(settings))
        writer.writeheader()
        writer.writerows(rows)


def add_commands(cli: Any) -> None:
    import click

    from engine.sdk import Fail, pass_app, run_async

    @cli.group(name="recruiting")
    def recruiting() -> None:
        """Recruiting: the monthly recruiting figures, the HR monthly report and staff snapshots."""

    @recruiting.command(name="report")
    @click.option("--org", "org_id", required=True, help="Organization id.")
    @click.option("--month", required=True, help="Month to report, YYYY-MM.")
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
    @pass_app
    @run_async
    async def report(state: Any, org_id: str, month: str, out: Path) -> None:
        """Write the month's figures per hospital and for the group (site "*") as CSV."""
        from datetime import UTC, datetime

        from engine.sdk import FeishuError, Services
        from engine.sdk.feishu import open_client

        from .activities import report_for
        from .rules import report_csv_rows

        if not _MONTH.match(month):
            raise click.BadParameter("expected YYYY-MM, e.g. 2026-11", param_hint="--month")
        config, org, site = _open_org(state, org_id)
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

    add_hr_commands(recruiting)


def _open_org(state: Any, org_id: str) -> tuple[Any, Any, Any]:
    import click  # noqa: F401 - the command group's dependency

    from engine.sdk import Fail, UnknownContext, resolve_site_context

    from .models import SCENARIO

    config = state.config()
    try:
        org = config.org(org_id)
        site = resolve_site_context(org, SCENARIO)
    except (KeyError, UnknownContext) as error:
        raise Fail(f"no recruiting organization {org_id!r}", "check --org against the config's organizations "
                   "and that it enables recruiting") from error
    return config, org, site


def add_hr_commands(recruiting: Any) -> None:
    import click

    from engine.sdk import pass_app, run_async

    @recruiting.command(name="hr-report")
    @click.option("--org", "org_id", required=True, help="Organization id.")
    @click.option("--month", required=True, help="Month to report, YYYY-MM.")
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
    @click.option("--locale", default="zh_CN", type=click.Choice(["zh_CN", "en_US"]),
                  help="Language of the group's row name (集团 / Group).")
    @pass_app
    @run_async
    async def hr_report(state: Any, org_id: str, month: str, out: Path, locale: str) -> None:
        """Write the HR monthly report (a row per hospital and the group) as CSV, from the recorded rows."""
        from datetime import UTC, datetime

        from engine.sdk import Fail, FeishuError, Services
        from engine.sdk.feishu import open_client

        from .config import RecruitingSettings
        from .hr_report import hr_report_for
        from .hr_rules import hr_export_rows

        if not _MONTH.match(month):
            raise click.BadParameter("expected YYYY-MM, e.g. 2026-11", param_hint="--month")
        config, org, site = _open_org(state, org_id)
        async with open_client(config) as client:
            try:
                result = await hr_report_for(Services(config=config, feishu=client), org.id, month,
                                             site.clock.now(datetime.now(UTC)))
            except FeishuError as error:
                raise Fail(f"the HR report's tables could not be read: {error}",
                           "check the app's Bitable permission and the network, then run it again") from error
        settings = site.settings_as(RecruitingSettings)
        write_hr_csv(hr_export_rows(result, settings, locale), out, settings)
        note = "" if result.previous_recorded else " (no staff snapshot of the month before: no joiners counted)"
        click.echo(f"{out}: {len(result.hospitals)} hospital(s) and the group for {month}{note}")

    @recruiting.command(name="snapshot")
    @click.option("--org", "org_id", required=True, help="Organization id.")
    @click.option("--month", required=True, help="Month whose end the directory stands for now, YYYY-MM.")
    @pass_app
    @run_async
    async def snapshot(state: Any, org_id: str, month: str) -> None:
        """Record who is in post now (Feishu's contact directory) as the month's staff snapshot."""
        from engine.sdk import Fail, FeishuError, Services
        from engine.sdk.feishu import open_client

        from .hr_report import record_snapshot

        if not _MONTH.match(month):
            raise click.BadParameter("expected YYYY-MM, e.g. 2026-11", param_hint="--month")
        config, org, _ = _open_org(state, org_id)
        async with open_client(config) as client:
            try:
                result = await record_snapshot(Services(config=config, feishu=client), org.id, month,
                                               client_token=f"cli:snapshot:{org.id}:{month}")
            except FeishuError as error:
                raise Fail(f"the directory could not be read or the snapshot written: {error}",
                           "check the app's contact and Bitable permissions, then run it again") from error
        click.echo(f"{month}: {result.people} people in post recorded")
