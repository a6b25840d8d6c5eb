"""Printable QR labels: an SVG sheet or an A4 PDF with cut marks, a code per asset with its id and name
underneath, and each asset's link listed beside it (printed, and in a CSV next to the sheet).

Each code encodes the asset's signed scan link (``ingress.public_url`` + ``/asset_loan/scan/...``), so
a label cannot be re-pointed at another asset. Assets come from the organization's asset table, or from
a stand-in seed / inventory file (``--inventory``), which needs no Feishu at all.

The PDF is drawn with ReportLab: the codes as vector squares from segno's matrix (sharp at any printer
resolution), asset names in ReportLab's built-in Adobe CJK font ``STSong-Light`` (no font file to ship;
viewers supply the glyphs), and each code is also a link annotation to its scan page.
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

# SVG sheet geometry, in SVG user units (1 unit = 1 px at 96 dpi): A4 portrait is 794 x 1123.
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


# PDF sheet geometry in millimetres: A4 portrait (210 x 297), 3 x 4 labels of 60 x 62 centred on the page
PDF_COLUMNS, PDF_ROWS = 3, 4
PDF_LABEL_W, PDF_LABEL_H = 60.0, 62.0
PDF_QR = 40.0  # the code's side, quiet zone included
PDF_MARK = 5.0  # cut-mark length, drawn in the margin 1 mm away from the grid
CJK_FONT = "STSong-Light"


def render_pdf(labels: Sequence[Label], *, title: str = "Asset labels") -> bytes:
    """The A4 PDF sheet(s): 12 labels a page, cut marks in the margins on every grid line (ReportLab)."""
    import io

    import segno
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
    page_w, page_h = A4
    grid_w, grid_h = PDF_COLUMNS * PDF_LABEL_W * mm, PDF_ROWS * PDF_LABEL_H * mm
    left, bottom = (page_w - grid_w) / 2, (page_h - grid_h) / 2
    per_page = PDF_COLUMNS * PDF_ROWS
    pages = max(1, (len(labels) + per_page - 1) // per_page)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=1)
    pdf.setTitle(title)
    pdf.setCreator("feishu-ops-engine asset_loan labels")
    for page in range(pages):
        _cut_marks(pdf, left, bottom, grid_w, grid_h, mm)
        for slot, label in enumerate(labels[page * per_page:(page + 1) * per_page]):
            x = left + (slot % PDF_COLUMNS) * PDF_LABEL_W * mm
            y = bottom + grid_h - (slot // PDF_COLUMNS + 1) * PDF_LABEL_H * mm
            _pdf_label(pdf, segno.make(label.url, error="m", micro=False), label, x, y, mm)
        pdf.setFont(CJK_FONT, 7)
        pdf.setFillGray(0.4)
        pdf.drawCentredString(page_w / 2, bottom / 2, f"{title} - page {page + 1}/{pages} - cut along the marks")
        pdf.setFillGray(0)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _cut_marks(pdf: Any, left: float, bottom: float, width: float, height: float, mm: float) -> None:
    pdf.setLineWidth(0.3)
    pdf.setStrokeGray(0)
    gap, length = 1 * mm, PDF_MARK * mm
    for column in range(PDF_COLUMNS + 1):
        x = left + column * PDF_LABEL_W * mm
        pdf.line(x, bottom - gap, x, bottom - gap - length)
        pdf.line(x, bottom + height + gap, x, bottom + height + gap + length)
    for row in range(PDF_ROWS + 1):
        y = bottom + row * PDF_LABEL_H * mm
        pdf.line(left - gap, y, left - gap - length, y)
        pdf.line(left + width + gap, y, left + width + gap + length, y)


def _pdf_label(pdf: Any, code: Any, label: Label, x: float, y: float, mm: float) -> None:
    """One label with its lower-left corner at (x, y): the code, the asset id, the name."""
    matrix = [list(row) for row in code.matrix_iter(scale=1, border=4)]
    module = PDF_QR * mm / len(matrix)
    qr_left = x + (PDF_LABEL_W * mm - PDF_QR * mm) / 2
    qr_top = y + PDF_LABEL_H * mm - 4 * mm
    pdf.setFillGray(0)
    for r, row in enumerate(matrix):
        c = 0
        while c < len(row):  # one rectangle per run of dark modules in a row
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            pdf.rect(qr_left + start * module, qr_top - (r + 1) * module, (c - start) * module, module,
                     stroke=0, fill=1)
    qr_bottom = qr_top - PDF_QR * mm
    pdf.linkURL(label.url, (qr_left, qr_bottom, qr_left + PDF_QR * mm, qr_top), relative=0)
    centre = x + PDF_LABEL_W * mm / 2
    pdf.setFont("Helvetica-Bold", 10)
    pdf.drawCentredString(centre, qr_bottom - 5 * mm, label.asset_id)
    pdf.setFont(CJK_FONT, 8)
    pdf.drawCentredString(centre, qr_bottom - 9.5 * mm, _clip(label.name, 22))


def write_links(labels: Sequence[Label], path: Path) -> Path:
    """``asset_id,name,url`` for every label (UTF-8 with BOM, so Excel reads the Chinese names)."""
    from engine.sdk import csvexport

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csvexport.writer(handle)
        writer.writerow(["asset_id", "name", "url"])
        writer.writerows([label.asset_id, label.name, label.url] for label in labels)
    return path


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
    """``engine asset_loan labels --org X [--asset ID ...] --out FILE.svg|FILE.pdf``."""
    import asyncio

    import click

    from engine.sdk import Fail, pass_app

    @cli.group(name="asset_loan")
    def group() -> None:
        """Asset loans: QR labels for the scan page."""

    @group.command(name="labels")
    @click.option("--org", "org_id", required=True, help="Organization id from the config.")
    @click.option("--asset", "asset_ids", multiple=True, help="Only these asset ids (repeatable); default: all.")
    @click.option("--out", type=click.Path(path_type=Path), required=True,
                  help="The sheet to write: FILE.pdf (A4, cut marks) or FILE.svg. The links go beside it, FILE.csv.")
    @click.option("--inventory", type=click.Path(path_type=Path, exists=True), default=None,
                  help="Read assets from this stand-in seed / inventory JSON instead of the Bitable.")
    @click.option("--png-dir", type=click.Path(path_type=Path), default=None,
                  help="Also write one PNG per code into this folder.")
    @pass_app
    def labels(state: Any, org_id: str, asset_ids: tuple[str, ...], out: Path, inventory: Path | None,
               png_dir: Path | None) -> None:
        """Write a printable sheet of signed QR labels, and list each asset's link."""
        kind = out.suffix.lower()
        if kind not in (".pdf", ".svg"):
            raise Fail(f"--out {out}: the sheet is a .pdf or an .svg file", "e.g. --out labels.pdf")
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
        if kind == ".pdf":
            out.write_bytes(render_pdf(chosen, title=f"{org.name or org_id} asset labels"))
        else:
            out.write_text(render_sheet(chosen), encoding="utf-8")
        links = write_links(chosen, out.with_suffix(".csv"))
        if png_dir is not None:
            write_pngs(chosen, png_dir)
        for label in chosen:
            click.echo(f"{label.asset_id}\t{label.name}\t{label.url}")
        click.echo(f"{len(chosen)} label(s) written to {out}; their links to {links}")
