"""Printable QR labels of the assets: ``engine asset_loan labels`` (the sheet, the CSV and the printed links
are the SDK's :mod:`engine.sdk.labels`).

Each code encodes the asset's signed scan link (``ingress.public_url`` + ``/asset_loan/scan/{org}/{asset_id}
?sig=...``), so a label cannot be re-pointed at another asset. Assets come from the organization's asset
table, or from a stand-in seed / inventory file (``--inventory``), which needs no Feishu at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.sdk import labels as sdk_labels

from .bitable import cell_text
from .config import AssetLoanSettings

SCENARIO = "asset_loan"
# the scan link every printed label carries: its form (and so its signature) never changes
LINK = sdk_labels.LinkKind(SCENARIO, "/asset_loan/scan")


def _items(records: list[dict[str, Any]], settings: AssetLoanSettings) -> list[sdk_labels.Item]:
    names = settings.fields
    found: list[sdk_labels.Item] = []
    for fields in records:
        asset_id = cell_text(fields.get(names.asset_id) or fields.get("asset_id")).strip()
        if asset_id:
            found.append((asset_id, cell_text(fields.get(names.name) or fields.get("name")), {}))
    return found


def assets(config: Any, org: Any, inventory: Path | None) -> list[sdk_labels.Item]:
    """The assets to label: from ``inventory`` (a stand-in seed's asset table, or a list of objects with
    the table's field names or ``asset_id``/``name``), else the asset table through the Feishu app."""
    settings: AssetLoanSettings = org.settings(SCENARIO)
    if inventory is not None:
        return _items(sdk_labels.seed_records(inventory, settings.app_token, settings.asset_table_id), settings)
    import asyncio

    from engine.sdk.feishu import open_client

    async def read() -> list[dict[str, Any]]:
        async with open_client(config) as client:
            records = await client.bitable_search(settings.app_token, settings.asset_table_id)
        return [record.fields for record in records]

    return _items(asyncio.run(read()), settings)


def register(cli: Any) -> None:
    """``engine asset_loan labels --org X [--asset ID ...] --out FILE.svg|FILE.pdf``."""
    @cli.group(name=SCENARIO)
    def group() -> None:
        """Asset loans: QR labels for the scan page."""

    sdk_labels.labels_command(group, scenario=SCENARIO, link=LINK, items=assets, noun="asset", title="asset labels",
                   inventory_help="Read assets from this stand-in seed / inventory JSON instead of the Bitable.")
