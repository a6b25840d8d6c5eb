"""``engine device_calibration export``: the calibration audit trail as CSV.

``engine device_calibration export --org X [--device ID] --out FILE`` writes the calibration history
(every decision and confirmation: who, what, when, why) as CSV, from two sources merged on their key:
the calibration log table in Bitable (complete, survives continue-as-new) and the ``state`` query of the
running cycles (the latest entries, also when the log table is switched off).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from plugins.device_calibration.models import SCENARIO, CycleState, cycle_key

CSV_COLUMNS = ["org", "device_id", "kind", "cycle", "seq", "at", "action", "actor", "reason", "detail", "source"]


def _log_rows(org_id: str, settings: Any, records: Iterable[Any], device: str | None) -> list[dict[str, Any]]:
    from datetime import UTC, datetime

    names = settings.log_fields
    rows = []
    for record in records:
        fields = record.fields
        device_id = str(fields.get(names.device_id, ""))
        if device and device_id.upper() != device.upper():
            continue
        at = fields.get(names.at)
        when = datetime.fromtimestamp(at / 1000, tz=UTC).isoformat() if isinstance(at, int | float) else str(at or "")
        key = str(fields.get(names.key, ""))
        rows.append({"org": org_id, "device_id": device_id, "kind": fields.get(names.kind, ""),
                     "cycle": fields.get(names.cycle, ""), "seq": key.rsplit(":", 1)[-1], "at": when,
                     "action": fields.get(names.action, ""), "actor": fields.get(names.actor, ""),
                     "reason": fields.get(names.reason, ""), "detail": fields.get(names.detail, ""),
                     "source": "bitable", "_key": key})
    return rows


def _state_rows(org_id: str, wid: str, state: CycleState) -> list[dict[str, Any]]:
    return [{"org": org_id, "device_id": state.device_id, "kind": state.kind, "cycle": entry.cycle,
             "seq": entry.seq, "at": entry.at.isoformat(), "action": entry.action, "actor": entry.actor,
             "reason": entry.reason, "detail": json.dumps(entry.detail, ensure_ascii=False, default=str),
             "source": "workflow", "_key": f"{wid}:{entry.cycle}:{entry.seq}"} for entry in state.history]


async def export_rows(config: Any, feishu: Any, client: Any, org_id: str, device: str | None = None
                      ) -> list[dict[str, Any]]:
    """The audit rows of one organization (or one device), oldest first, each event once."""
    from engine.ids import workflow_id
    from plugins.device_calibration.activities import cycle_state
    from plugins.device_calibration.rules import parse_device

    org = config.org(org_id)
    settings = org.settings(SCENARIO)
    bitable = settings.bitable
    rows: list[dict[str, Any]] = []
    if bitable.log_table_id:
        rows += _log_rows(org.id, settings, await feishu.bitable_search(bitable.app_token, bitable.log_table_id),
                          device)
    if device:
        device_ids = [device.upper()]
    else:
        parsed = [parse_device(r.record_id, r.fields, settings, org.zone)
                  for r in await feishu.bitable_search(bitable.app_token, bitable.table_id)]
        device_ids = [d.device_id for d in parsed if d is not None]
    for device_id in device_ids:
        for kind in settings.schedules:
            wid = workflow_id(org.id, SCENARIO, cycle_key(device_id, kind))
            state = await cycle_state(client, wid)
            if state is not None:
                rows += _state_rows(org.id, wid, state)
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["_key"] or f"row{len(unique)}", row)  # Bitable first: it has every cycle
    ordered = sorted(unique.values(), key=lambda r: (r["device_id"], r["kind"], r["at"]))
    return [{k: v for k, v in row.items() if k != "_key"} for row in ordered]


def write_csv(rows: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    # utf-8-sig: Excel on Chinese Windows opens it with the right encoding
    with out.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def add_commands(cli: Any) -> None:
    import click

    from engine.cli import Fail, pass_app, run_async

    @cli.group(name="device_calibration")
    def group() -> None:
        """Calibration cycles of measuring equipment."""

    @group.command("export")
    @click.option("--org", "org_id", required=True, help="Organization id.")
    @click.option("--device", default=None, help="Only this device (e.g. CT-0012).")
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="CSV file to write.")
    @pass_app
    @run_async
    async def export(state: Any, org_id: str, device: str | None, out: Path) -> None:
        """Write the calibration audit trail (decisions and confirmations) as CSV."""
        from engine.feishu.client import FeishuClient
        from engine.runtime.worker import connect_config

        config = state.config()
        if org_id not in config.orgs:
            raise Fail(f"no organization {org_id!r}", f"known: {', '.join(config.orgs)}")
        client = await connect_config(config)
        feishu = FeishuClient.from_config(config)
        try:
            rows = await export_rows(config, feishu, client, org_id, device)
        finally:
            await feishu.aclose()
        write_csv(rows, out)
        click.echo(f"{len(rows)} rows written to {out}")
