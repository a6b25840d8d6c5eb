"""``engine asset_loan labels``: each asset's link printed and written beside the sheet (CSV), and the A4 PDF
sheet with cut marks whose codes read back (pdfium renders the page, zxing-cpp decodes it) as those links."""

from __future__ import annotations

import csv
import ctypes
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine import labels as signing
from engine.labels import PDF_COLUMNS, PDF_LABEL_H, PDF_LABEL_W, PDF_ROWS
from engine.secrets import derive
from plugins.asset_loan.labels import LINK

REPO = Path(__file__).parents[3]
INVENTORY = REPO / "examples" / "asset_loan" / "inventory.json"
SECRET = "test-asset-loan-labels-secret-0123456789"
PUBLIC = "https://loans.example.org"
A4_POINTS = (595.28, 841.89)  # 210 x 297 mm at 72 points per inch
MM = 72 / 25.4


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(f'[ingress]\npublic_url = "{PUBLIC}"\n\n[organizations.acme]\nname = "研发中心"\n'
                    'plugins = ["asset_loan"]\n', encoding="utf-8")
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "asset_loan")
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", SECRET)
    monkeypatch.delenv("ASSET_LOAN_SIGNING_KEY_PREVIOUS", raising=False)
    return path


def link(asset_id: str) -> str:
    """The signed scan link a label of ``asset_id`` must carry."""
    key = derive(SECRET.encode(), org="acme", scenario="asset_loan", name="signing", purpose=signing.LINKS)
    return LINK.url(PUBLIC, key, "acme", asset_id)


def labels(config: Path, *args: str) -> tuple[int, str]:
    from engine.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), "asset_loan", "labels", "--org", "acme", *args])
    return result.exit_code, result.output


def inventory_assets() -> list[tuple[str, str]]:
    seed = json.loads(INVENTORY.read_text("utf-8"))
    records = seed["bitable"]["bascnAssetLoan"]["tblAssets"]["records"]
    return [(r["fields"]["资产编号"], r["fields"]["名称"]) for r in records]


def uris(document: object, page: object) -> list[str]:
    """The link annotations' URIs of a pdfium page."""
    import pypdfium2.raw as raw

    found, position, handle = [], ctypes.c_int(0), raw.FPDF_LINK()
    while raw.FPDFLink_Enumerate(page.raw, ctypes.byref(position), ctypes.byref(handle)):  # type: ignore[attr-defined]
        action = raw.FPDFLink_GetAction(handle)
        size = raw.FPDFAction_GetURIPath(document.raw, action, None, 0)  # type: ignore[attr-defined]
        buffer = ctypes.create_string_buffer(size)
        raw.FPDFAction_GetURIPath(document.raw, action, buffer, size)  # type: ignore[attr-defined]
        found.append(buffer.value.decode())
    return found


def test_the_links_are_printed_and_written_beside_the_sheet(config: Path, tmp_path: Path) -> None:
    code, output = labels(config, "--inventory", str(INVENTORY), "--out", str(tmp_path / "sheet.svg"))
    assert code == 0, output
    assets = inventory_assets()
    for asset_id, name in assets:
        assert f"{asset_id}\t{name}\t{link(asset_id)}" in output.splitlines()
    assert f"10 label(s) written to {tmp_path / 'sheet.svg'}; their links to {tmp_path / 'sheet.csv'}" in output
    with (tmp_path / "sheet.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["asset_id", "name", "url"], *([a, n, link(a)] for a, n in assets)]


def test_the_pdf_sheet_is_a4_with_cut_marks_and_every_code_reads_back_as_its_link(config: Path,
                                                                                   tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2", reason="the PDF check needs the test extra's pypdfium2")
    zxingcpp = pytest.importorskip("zxingcpp", reason="reading the codes back needs the test extra's zxing-cpp")
    import pypdfium2.raw as raw

    # 13 assets: a full page of 12 and one on a second page; one name is a spreadsheet formula
    inventory = [{"asset_id": f"LAB-{n:03d}", "name": f"样品架 {n} 号"} for n in range(1, 13)]
    inventory.append({"asset_id": "LAB-013", "name": '=HYPERLINK("https://evil.example","点我")'})
    seed = tmp_path / "inventory.json"
    seed.write_text(json.dumps(inventory, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "labels.pdf"
    code, output = labels(config, "--inventory", str(seed), "--out", str(out))
    assert code == 0, output
    assert "13 label(s) written" in output

    document = pdfium.PdfDocument(str(out))
    assert len(document) == 2
    expected = [link(item["asset_id"]) for item in inventory]
    decoded: list[str] = []
    for number, page in enumerate(document):
        width, height = page.get_size()
        assert (round(width, 2), round(height, 2)) == A4_POINTS
        # the codes, rendered at 300 dpi as a printer would, read back as the labels' links
        image = page.render(scale=300 / 72).to_pil()
        decoded += sorted(c.text for c in zxingcpp.read_barcodes(image))
        assert sorted(uris(document, page)) == sorted(expected[number * 12:(number + 1) * 12])
        text = page.get_textpage().get_text_range()
        assert all(item["asset_id"] in text for item in inventory[number * 12:(number + 1) * 12])
        # cut marks: a short line in the margin on every grid line, nothing else drawn outside the grid
        grid_w, grid_h = PDF_COLUMNS * PDF_LABEL_W * MM, PDF_ROWS * PDF_LABEL_H * MM
        left, bottom = (width - grid_w) / 2, (height - grid_h) / 2
        outside = [o.get_bounds() for o in page.get_objects(filter=[raw.FPDF_PAGEOBJ_PATH])
                   if not (left - 0.5 <= o.get_bounds()[0] and o.get_bounds()[2] <= left + grid_w + 0.5
                           and bottom - 0.5 <= o.get_bounds()[1] and o.get_bounds()[3] <= bottom + grid_h + 0.5)]
        assert len(outside) == 2 * (PDF_COLUMNS + 1) + 2 * (PDF_ROWS + 1)
        assert all(abs((b[2] - b[0]) - 5 * MM) < 1 or abs((b[3] - b[1]) - 5 * MM) < 1 for b in outside)
    assert sorted(decoded) == sorted(expected)
    assert "样品架 1 号" in document[0].get_textpage().get_text_range()

    with (tmp_path / "labels.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[-1] == ["LAB-013", "'" + inventory[-1]["name"], link("LAB-013")]  # no live formula


def test_a_sheet_that_is_neither_pdf_nor_svg_is_refused(config: Path, tmp_path: Path) -> None:
    code, output = labels(config, "--inventory", str(INVENTORY), "--out", str(tmp_path / "labels.png"))
    assert code != 0 and ".pdf or an .svg" in output and not (tmp_path / "labels.png").exists()
