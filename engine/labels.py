"""QR labels for plugins' pages: signed links, and the sheet (SVG, or an A4 PDF with cut marks) and CSV.

A plugin that sticks labels on things (asset_loan's materials, repair's equipment and rooms) describes
its link with a :class:`LinkKind` and its labels with :class:`Label`; the engine signs and verifies the
links, draws the sheets and writes the links' list. :func:`labels_command` is the whole
``engine <scenario> labels`` command, given where the plugin's items come from.

A link ``{route}/{org}/{item}?{extra...}&sig=...`` carries the HMAC-SHA256 (first 16 bytes, base64url)
of the scenario, the organization, the item and the extra query values, so nobody can make a link for
another item or alter one; each kind of key is derived per purpose (:data:`LINKS`, :data:`SESSIONS`,
:data:`LOGIN_STATE`, :data:`CSRF`) from the scenario's secret by :class:`engine.secrets.Keyring`, and
verifying takes every key still accepted (the current one, then previous secrets' during a rotation).

The PDF is drawn with ReportLab: the codes as vector squares from segno's matrix (sharp at any printer
resolution), names in ReportLab's built-in Adobe CJK font ``STSong-Light`` (no font file to ship;
viewers supply the glyphs), and each code is also a link annotation to its page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

SIG_BYTES = 16  # 128 bits: unguessable, and short enough for a small QR code

# purposes of the keys derived from a scenario's secret: one key each
LINKS = "links"
SESSIONS = "sessions"
LOGIN_STATE = "login_state"
CSRF = "csrf"

Keys = bytes | Sequence[bytes]


def all_keys(keys: Keys) -> Sequence[bytes]:
    """``keys`` as a sequence (one key, or the current one then previous ones)."""
    return [keys] if isinstance(keys, bytes) else keys


def b64(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mac(key: bytes, scope: str, *parts: str) -> str:
    """The short HMAC-SHA256 of ``scope`` and ``parts``, joined by the unit separator (which cannot occur
    in an org id, and is never confused with the characters of an id or a name)."""
    digest = hmac.new(key, "\x1f".join((scope, *parts)).encode(), hashlib.sha256).digest()
    return b64(digest[:SIG_BYTES])


def mac_ok(keys: Keys, signature: str | None, scope: str, *parts: str) -> bool:
    """Whether ``signature`` is :func:`mac` of these parts under one of ``keys`` (constant time per key;
    every key is tried, so the time taken does not tell which one matched)."""
    if not signature:
        return False
    results = [hmac.compare_digest(mac(key, scope, *parts).encode(), signature.encode()) for key in all_keys(keys)]
    return any(results)


@dataclass(frozen=True)
class LinkKind:
    """The signed links of one scenario's page: ``{route}/{org}/{item}?{extra}&sig=...``.

    ``extra`` names the query values the link carries besides the signature (e.g. a label's printed name),
    signed with it in this order. asset_loan's scan links are ``LinkKind("asset_loan", "/asset_loan/scan")``.
    """

    scope: str
    route: str
    extra: tuple[str, ...] = ()

    def signature(self, key: bytes, org: str, item: str, extra: Mapping[str, str] | None = None) -> str:
        return mac(key, self.scope, org, item, *self._values(extra))

    def verify(self, keys: Keys, org: str, item: str, signature: str | None,
               extra: Mapping[str, str] | None = None) -> bool:
        """Whether ``signature`` was made by one of ``keys`` for this organization, item and extra values."""
        return mac_ok(keys, signature, self.scope, org, item, *self._values(extra))

    def path(self, key: bytes, org: str, item: str, extra: Mapping[str, str] | None = None) -> str:
        values = {name: value for name, value in zip(self.extra, self._values(extra), strict=True) if value}
        query = urlencode({**values, "sig": self.signature(key, org, item, extra)})
        return f"{self.route}/{quote(org, safe='')}/{quote(item, safe='')}?{query}"

    def url(self, public_url: str, key: bytes, org: str, item: str, extra: Mapping[str, str] | None = None) -> str:
        """The link a label's QR code encodes."""
        return public_url.rstrip("/") + self.path(key, org, item, extra)

    def _values(self, extra: Mapping[str, str] | None) -> list[str]:
        given = extra or {}
        return [str(given.get(name, "")) for name in self.extra]


# ------------------------------------------------------------------------------------------ the sheet


@dataclass(frozen=True)
class Label:
    """One label: the item's id (printed in bold), its name (printed under it) and the link its code encodes."""

    item_id: str
    name: str
    url: str


# SVG sheet geometry, in SVG user units (1 unit = 1 px at 96 dpi): A4 portrait is 794 x 1123.
PAGE_WIDTH = 794
COLUMNS = 4
CELL_WIDTH = PAGE_WIDTH // COLUMNS
CELL_HEIGHT = 250
QR_SCALE = 3
MARGIN = 12


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
        parts.append(f'<g class="label" data-item="{html.escape(label.item_id)}">'
                     f'<rect x="{x + 4}" y="{y + 4}" width="{CELL_WIDTH - 8}" height="{CELL_HEIGHT - 8}" '
                     'fill="none" stroke="#bbb" stroke-dasharray="4 3"/>'
                     f'<g transform="translate({left},{y + MARGIN})">{svg}</g>'
                     f'<text x="{x + CELL_WIDTH // 2}" y="{y + MARGIN + size + 18}" text-anchor="middle" '
                     f'font-family="monospace" font-size="14" font-weight="bold">{html.escape(label.item_id)}</text>'
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


def render_pdf(labels: Sequence[Label], *, title: str = "Labels", creator: str = "feishu-ops-engine labels") -> bytes:
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
    pdf.setCreator(creator)
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
    """One label with its lower-left corner at (x, y): the code, the item id, the name."""
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
    pdf.drawCentredString(centre, qr_bottom - 5 * mm, label.item_id)
    pdf.setFont(CJK_FONT, 8)
    pdf.drawCentredString(centre, qr_bottom - 9.5 * mm, _clip(label.name, 22))


def write_links(labels: Sequence[Label], path: Path, id_header: str = "id") -> Path:
    """``<id_header>,name,url`` for every label (UTF-8 with BOM, so Excel reads the Chinese names; a
    formula-like name is written as text)."""
    from engine import csvexport

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csvexport.writer(handle)
        writer.writerow([id_header, "name", "url"])
        writer.writerows([label.item_id, label.name, label.url] for label in labels)
    return path


def write_pngs(labels: Sequence[Label], folder: Path, scale: int = 6) -> list[Path]:
    """One PNG per label's code, named after the item id (for checking with a decoder, or printing elsewhere)."""
    import segno

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for label in labels:
        path = folder / f"{label.item_id}.png"
        segno.make(label.url, error="m", micro=False).save(str(path), scale=scale, border=4)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------- the items


def seed_records(path: Path, app_token: str, table_id: str) -> list[dict[str, Any]]:
    """The rows' fields of a JSON file: a stand-in seed's table ``app_token``/``table_id``, or a plain list
    of objects. Raises ``ValueError`` naming the file when it is neither."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict) and "bitable" in data:
        table = data["bitable"].get(app_token, {}).get(table_id, {})
        raw = table.get("records", [])
        return [r.get("fields", r) for r in (raw.values() if isinstance(raw, dict) else raw)]
    if isinstance(data, list) and all(isinstance(row, dict) for row in data):
        return data
    raise ValueError(f"{path}: neither a stand-in seed nor a JSON list of objects")


# One item to label: (id, name, extra query values of its link).
Item = tuple[str, str, Mapping[str, str]]
ItemSource = Callable[[Any, Any, Path | None], Sequence[Item]]


def make_labels(items: Sequence[Item], link: LinkKind, *, org: str, key: bytes, public_url: str,
                only: Sequence[str] = ()) -> list[Label]:
    """Labels for ``items`` (in the order of ``only`` when given; unknown ids raise ``KeyError``)."""
    by_id = {item_id: (name, extra) for item_id, name, extra in items}
    chosen = list(only) if only else [item_id for item_id, _, _ in items]
    missing = [item_id for item_id in chosen if item_id not in by_id]
    if missing:
        raise KeyError(f"not in the inventory: {', '.join(missing)}")
    return [Label(item_id, by_id[item_id][0], link.url(public_url, key, org, item_id, by_id[item_id][1]))
            for item_id in chosen]


def labels_command(group: Any, *, scenario: str, link: LinkKind, items: ItemSource, noun: str = "item",
                   title: str = "labels", inventory_help: str = "Read the items from this JSON file.",
                   secret: str | None = None) -> Any:
    """Add ``labels`` to the click ``group``: ``engine <scenario> labels --org X [--<noun> ID ...] --out
    FILE.pdf|FILE.svg [--inventory FILE] [--png-dir DIR]``.

    ``items(config, org, inventory)`` gives the items to label (``inventory`` is the ``--inventory`` path or
    None); it raises ``ValueError`` with a message for the user when it cannot. Each label's link is signed
    with the :data:`LINKS` key of the scenario's secret ``secret`` (None: the first it declares), the key its
    :class:`engine.scan_page.ScanSite` verifies with; the links are printed, and written beside the sheet (FILE.csv,
    first column ``<noun>_id``).
    """
    import click

    from engine.cli import Fail, pass_app

    @group.command(name="labels")
    @click.option("--org", "org_id", required=True, help="Organization id from the config.")
    @click.option(f"--{noun}", "only", multiple=True, help=f"Only these {noun} ids (repeatable); default: all.")
    @click.option("--out", type=click.Path(path_type=Path), required=True,
                  help="The sheet to write: FILE.pdf (A4, cut marks) or FILE.svg. The links go beside it, FILE.csv.")
    @click.option("--inventory", type=click.Path(path_type=Path, exists=True), default=None, help=inventory_help)
    @click.option("--png-dir", type=click.Path(path_type=Path), default=None,
                  help="Also write one PNG per code into this folder.")
    @pass_app
    def labels(state: Any, org_id: str, only: tuple[str, ...], out: Path, inventory: Path | None,
               png_dir: Path | None) -> None:
        """Write a printable sheet of signed QR labels, and list each one's link."""
        kind = out.suffix.lower()
        if kind not in (".pdf", ".svg"):
            raise Fail(f"--out {out}: the sheet is a .pdf or an .svg file", "e.g. --out labels.pdf")
        config = state.config()
        try:
            org = config.org(org_id)
            org.settings(scenario)
        except KeyError as error:
            raise Fail(str(error).strip("'\""), f"check --org and that {scenario} is in its plugins") from None
        try:
            found = items(config, org, inventory)
        except ValueError as error:
            raise Fail(str(error), "pass --inventory with a JSON list, or fix the file") from None
        public = (config.ingress.public_url or "http://127.0.0.1:8080").rstrip("/")
        try:
            key = org.keyring(scenario, secret).key(LINKS)
            chosen = make_labels(found, link, org=org_id, key=key, public_url=public, only=only)
        except KeyError as error:
            raise Fail(str(error).strip("'\""), f"list the {noun} ids of the inventory") from None
        if not chosen:
            raise Fail(f"no {noun}s to label", "fill the table or pass --inventory")
        out.parent.mkdir(parents=True, exist_ok=True)
        if kind == ".pdf":
            out.write_bytes(render_pdf(chosen, title=f"{org.name or org_id} {title}",
                                       creator=f"feishu-ops-engine {scenario} labels"))
        else:
            out.write_text(render_sheet(chosen), encoding="utf-8")
        written = write_links(chosen, out.with_suffix(".csv"), id_header=f"{noun}_id")
        if png_dir is not None:
            write_pngs(chosen, png_dir)
        for label in chosen:
            click.echo(f"{label.item_id}\t{label.name}\t{label.url}")
        click.echo(f"{len(chosen)} label(s) written to {out}; their links to {written}")

    return labels
