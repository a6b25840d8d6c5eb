"""Printable QR labels: one SVG sheet, a code per asset with its id and name underneath.

Each code encodes the asset's signed scan link (``ingress.public_url`` + ``/asset_loan/scan/...``), so
a label cannot be re-pointed at another asset. Assets come from the organization's asset table, or from
a stand-in seed / inventory file (``--inventory``), which needs no Feishu at all.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import signing
from .bitable import cell_text
from .config import AssetLoanSettings

# Sheet geometry, in SVG user units (1 unit = 1 px at 96 dpi): A4 portrait is 794 x 1123.
PAGE_WIDTH = 794
COLUMNS = 4
CELL_WIDTH = PAGE_WIDTH // COLUMNS
CELL_HEIGHT = 250
QR_SCALE = 3
MARGIN = 12


@dataclass(frozen=True)
class Label:
    asset_id: str
    name: str
    url: str


def assets_from_inventory(path: Path, settings: AssetLoanSettings) -> list[tuple[str, str]]:
    """``(asset_id, name)`` pairs from a stand-in seed (its asset table) or a plain list of objects."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = []
    if isinstance(data, dict) and "bitable" in data:
        table = data["bitable"].get(settings.app_token, {}).get(settings.asset_table_id, {})
        raw = table.get("records", [])
        records = [r.get("fields", r) for r in (raw.values() if isinstance(raw, dict) else raw)]
    elif isinstance(data, list):
        records = data
    names = settings.fields
    pairs = []
    for fields in records:
        asset_id = cell_text(fields.get(names.asset_id) or fields.get("asset_id")).strip()
        if asset_id:
            pairs.append((asset_id, cell_text(fields.get(names.name) or fields.get("name"))))
    return pairs


async def assets_from_bitable(config: Any, settings: AssetLoanSettings) -> list[tuple[str, str]]:
    """``(asset_id, name)`` pairs read from the asset table through the configured Feishu app."""
    from engine.sdk.feishu import open_client

    async with open_client(config) as client:
        records = await client.bitable_search(settings.app_token, settings.asset_table_id)
    names = settings.fields
    pairs = [(cell_text(r.fields.get(names.asset_id)).strip(), cell_text(r.fields.get(names.name))) for r in records]
    return [pair for pair in pairs if pair[0]]


def make_labels(assets: Sequence[tuple[str, str]], *, org: str, key: bytes, public_url: str,
                only: Sequence[str] = ()) -> list[Label]:
    """Labels for ``assets`` (in the order of ``only`` when given; unknown ids raise ``KeyError``)."""
    by_id = dict(assets)
    chosen = list(only) if only else [asset_id for asset_id, _ in assets]
    missing = [asset_id for asset_id in chosen if asset_id not in by_id]
    if missing:
        raise KeyError(f"not in the inventory: {', '.join(missing)}")
    return [Label(asset_id, by_id[asset_id], signing.scan_url(public_url, key, org, asset_id)) for asset_id in chosen]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_sheet(labels: Sequence[Label]) -> str:
    """The SVG sheet: a grid of QR codes (error correction M) with id and name under each."""
    import segno

    rows = max(1, (len(labels) + COLUMNS - 1) // COLUMNS)
    height = rows * CELL_HEIGHT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{PAGE_WIDTH}" height="{height}" '
             f'viewBox="0 0 {PAGE_WIDTH} {height}">',
             f'<rect width="{PAGE_WIDTH}" height="{height}" fill="#fff"/>']
    for index, label in enumerate(labels):
        x = (index % COLUMNS) * CELL_WIDTH
        y = (index // COLUMNS) * CELL_HEIGHT
        code = segno.make(label.url, error="m", micro=False)
        size = code.symbol_size(scale=QR_SCALE, border=2)[0]
        left = x + (CELL_WIDTH - size) // 2
        svg = code.svg_inline(scale=QR_SCALE, border=2)
        parts.append(f'<g class="label" data-asset="{html.escape(label.asset_id)}">'
                     f'<rect x="{x + 4}" y="{y + 4}" width="{CELL_WIDTH - 8}" height="{CELL_HEIGHT - 8}" '
                     'fill="none" stroke="#bbb" stroke-dasharray="4 3"/>'
                     f'<g transform="translate({left},{y + MARGIN})">{svg}</g>'
                     f'<text x="{x + CELL_WIDTH // 2}" y="{y + MARGIN + size + 18}" text-anchor="middle" '
                     f'font-family="monospace" font-size="14" font-weight="bold">{html.escape(label.asset_id)}</text>'
                     f'<text x="{x + CELL_WIDTH // 2}" y="{y + MARGIN + size + 36}" text-anchor="middle" '
                     f'font-family="sans-serif" font-size="12">{html.escape(_clip(label.name, 18))}</text></g>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_pngs(labels: Sequence[Label], folder: Path, scale: int = 6) -> list[Path]:
    """One PNG per label's code (for checking with a decoder, or printing elsewhere)."""
    import segno

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for label in labels:
        path = folder / f"{label.asset_id}.png"
        segno.make(label.url, error="m", micro=False).save(str(path), scale=scale, border=4)
        paths.append(path)
    return paths


def register(cli: Any) -> None:
    """``engine asset_loan labels --org X [--asset ID ...] --out FILE.svg``."""
    import asyncio

    import click

    from engine.sdk import Fail, pass_app

    @cli.group(name="asset_loan")
    def group() -> None:
        """Asset loans: QR labels for the scan page."""

    @group.command(name="labels")
    @click.option("--org", "org_id", required=True, help="Organization id from the config.")
    @click.option("--asset", "asset_ids", multiple=True, help="Only these asset ids (repeatable); default: all.")
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="The SVG sheet to write.")
    @click.option("--inventory", type=click.Path(path_type=Path, exists=True), default=None,
                  help="Read assets from this stand-in seed / inventory JSON instead of the Bitable.")
    @click.option("--png-dir", type=click.Path(path_type=Path), default=None,
                  help="Also write one PNG per code into this folder.")
    @pass_app
    def labels(state: Any, org_id: str, asset_ids: tuple[str, ...], out: Path, inventory: Path | None,
               png_dir: Path | None) -> None:
        """Write a printable sheet of signed QR labels."""
        config = state.config()
        try:
            org = config.org(org_id)
            settings = org.settings("asset_loan")
        except KeyError as error:
            raise Fail(str(error).strip("'\""), "check --org and that asset_loan is in its plugins") from None
        if inventory is not None:
            assets = assets_from_inventory(inventory, settings)
        else:
            assets = asyncio.run(assets_from_bitable(config, settings))
        public = (config.ingress.public_url or "http://127.0.0.1:8080").rstrip("/")
        try:
            chosen = make_labels(assets, org=org_id, key=org.keyring("asset_loan").key(signing.LINKS),
                                 public_url=public, only=asset_ids)
        except KeyError as error:
            raise Fail(str(error).strip("'\""), "list the asset ids of the asset table") from None
        if not chosen:
            raise Fail("no assets to label", "fill the asset table or pass --inventory")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_sheet(chosen), encoding="utf-8")
        if png_dir is not None:
            write_pngs(chosen, png_dir)
        click.echo(f"{len(chosen)} label(s) written to {out}")
