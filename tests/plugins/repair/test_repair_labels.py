"""repair's QR labels on equipment and rooms: ``engine repair labels`` (an A4 PDF whose codes read back, with
pdfium and zxing-cpp, as the signed report links) and the report page they open over real HTTP, behind the
stand-in's Feishu web login, which opens a ticket with the label's equipment or room filled in."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from repair_helpers import MED_TECH, REPORTER, report_pages, state

from engine.labels import LINKS
from engine.secrets import derive
from plugins.repair.labels import LINK

REPO = Path(__file__).parents[3]
PLACES = REPO / "examples" / "repair" / "places.json"
SECRET = "test-repair-signing-secret-0123456789abcdef"
PUBLIC = "https://repair.example.org"
MONITOR = {"name": "ICU 3床监护仪", "kind": "", "site": ""}
ROOM = {"name": "门诊2楼105诊室", "kind": "room", "site": ""}


def key(secret: str = SECRET, name: str = "signing") -> bytes:
    return derive(secret.encode(), org="acme", scenario="repair", name=name, purpose=LINKS)


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPAIR_SIGNING_KEY", SECRET)
    monkeypatch.setenv("REPAIR_ALERT_SECRET", "test-repair-alert-secret-0123456789abcdef")
    monkeypatch.delenv("REPAIR_SIGNING_KEY_PREVIOUS", raising=False)


CONFIG = f"""
[ingress]
public_url = "{PUBLIC}"

[organizations.acme]
name = "仁诺医院"
plugins = ["repair"]

[organizations.acme.sites.hosp_b]
name = "B院"
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An organization running repair, with a second site (hosp_b)."""
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "repair")
    (tmp_path / "engine.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path / "engine.toml"


def labels(config: Path, *args: str) -> tuple[int, str]:
    from engine.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), "repair", "labels", "--org", "acme", *args])
    return result.exit_code, result.output


def test_the_pdf_sheet_codes_read_back_as_the_report_links(config: Path, tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2", reason="the PDF check needs the test extra's pypdfium2")
    zxingcpp = pytest.importorskip("zxingcpp", reason="reading the codes back needs the test extra's zxing-cpp")
    places = json.loads(PLACES.read_text("utf-8"))
    out = tmp_path / "places.pdf"
    code, output = labels(config, "--inventory", str(PLACES), "--out", str(out))
    assert code == 0, output
    expected = {p["id"]: LINK.url(PUBLIC, key(), "acme", p["id"],
                                  {"name": p["name"], "kind": "room" if p["kind"] == "room" else ""})
                for p in places}
    assert f"{len(places)} label(s) written to {out}" in output
    for place in places:
        assert f"{place['id']}\t{place['name']}\t{expected[place['id']]}" in output.splitlines()
    assert "/repair/report/acme/ICU-03-MON?name=ICU+3%E5%BA%8A" in expected["ICU-03-MON"]
    assert "&kind=room&" in expected["OPD-2F-105"] and "kind=" not in expected["ICU-03-MON"]

    document = pdfium.PdfDocument(str(out))
    (page,) = document
    decoded = sorted(c.text for c in zxingcpp.read_barcodes(page.render(scale=300 / 72).to_pil()))
    assert decoded == sorted(expected.values())
    text = page.get_textpage().get_text_range()
    assert all(p["id"] in text for p in places) and "ICU 3床监护仪" in text
    with out.with_suffix(".csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["item_id", "name", "url"] and rows[1] == ["ICU-03-MON", "ICU 3床监护仪", expected["ICU-03-MON"]]


def test_a_site_is_signed_into_its_labels_and_bad_inventories_are_refused(config: Path, tmp_path: Path) -> None:
    inventory = tmp_path / "b.json"
    inventory.write_text(json.dumps([{"id": "B-XR-1", "name": "B院放射科DR", "site": "hosp_b"}]), "utf-8")
    code, output = labels(config, "--inventory", str(inventory), "--out", str(tmp_path / "b.svg"))
    assert code == 0, output
    link = LINK.url(PUBLIC, key(), "acme", "B-XR-1", {"name": "B院放射科DR", "site": "hosp_b"})
    assert f"B-XR-1\tB院放射科DR\t{link}" in output.splitlines() and "&site=hosp_b&" in link

    code, output = labels(config, "--out", str(tmp_path / "x.svg"))
    assert code != 0 and "need --inventory" in output
    for entry, says in (({"id": "X", "name": "x", "kind": "car"}, "kind is equipment or room"),
                        ({"id": "X", "name": "x", "site": "hosp_z"}, "no site 'hosp_z'"),
                        ({"name": "x"}, 'needs an "id"')):
        inventory.write_text(json.dumps([entry]), "utf-8")
        code, output = labels(config, "--inventory", str(inventory), "--out", str(tmp_path / "x.svg"))
        assert code != 0 and str(inventory) in output and says in output and "entry 1" in output, output
    assert not (tmp_path / "x.svg").exists()


def csrf_of(page: str) -> str:
    found = re.search(r"name='csrf' value='([^']+)'", page)
    assert found, page
    return found.group(1)


async def test_a_label_opens_the_report_page_prefilled_and_its_report_reaches_the_technician(
        scenario_harness: Any) -> None:
    async with report_pages(scenario_harness) as (env, public):
        url = LINK.url(public, key(), "acme", "ICU-03-MON", MONITOR)
        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
            first = await browser.get(url)
            hops = [str(r.url) for r in first.history]
            assert any("/open-apis/authen/v1/authorize?" in hop for hop in hops), hops
            assert any("/repair/auth/callback?code=" in hop for hop in hops), hops
            assert first.status_code == 200 and "<dd id='place'>ICU 3床监护仪</dd>" in first.text
            assert "李娜" in first.text and "name='text'" in first.text

            empty = await browser.post(url, data={"csrf": csrf_of(first.text), "request_id": "r1", "text": " "})
            assert empty.status_code == 400 and "请描述故障" in empty.text
            form = {"csrf": csrf_of(first.text), "request_id": "r1", "text": "黑屏 无法开机"}
            posted = await browser.post(url, data=form)
            found = re.search(r"工单号 (BX-\d{6}-[0-9A-Z]{5})", posted.text)
            assert posted.status_code == 200 and found, posted.text
            number = found.group(1)
            again = await browser.post(url, data=form)  # a double tap: the same ticket, nothing opened twice
            assert number in again.text

            forged = await browser.post(url, data={**form, "csrf": "nope", "request_id": "r2"})
            assert forged.status_code == 403
        await env.settle()
        ticket = await state(env, number)
        assert (ticket.location, ticket.asset_id, ticket.text) == ("ICU 3床监护仪", "ICU-03-MON", "黑屏 无法开机")
        assert (ticket.category, ticket.priority, ticket.reporter_open_id) == ("medical", "urgent", REPORTER)
        (card,) = env.messages(to=MED_TECH)
        assert card.card and number in str(card.card) and "ICU 3床监护仪" in str(card.card)
        assert any(number in m.text and "已收到您的报修" in m.text for m in env.messages(to=REPORTER))

        # a room's label: the room is the location, and no asset
        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
            room_url = LINK.url(public, key(), "acme", "OPD-2F-105", ROOM)
            page = await browser.get(room_url)
            assert "<dt>位置</dt><dd id='place'>门诊2楼105诊室</dd>" in page.text
            posted = await browser.post(room_url, data={"csrf": csrf_of(page.text), "request_id": "r3",
                                                        "text": "空调不制冷"})
            room_ticket = re.search(r"BX-\d{6}-[0-9A-Z]{5}", posted.text)
            assert room_ticket, posted.text
        await env.settle()
        ticket = await state(env, room_ticket.group(0))
        assert (ticket.location, ticket.asset_id, ticket.category) == ("门诊2楼105诊室", "", "facilities")


async def test_altered_labels_and_other_keys_are_refused(scenario_harness: Any) -> None:
    async with report_pages(scenario_harness) as (_, public), httpx.AsyncClient(timeout=10) as client:
        good = LINK.url(public, key(), "acme", "ICU-03-MON", MONITOR)
        assert (await client.get(good)).status_code == 302  # on to the login
        for bad in (good.replace("ICU-03-MON", "ICU-05-VENT"), good.replace("ICU+3", "ICU+4"),
                    good.replace("?name=", "?kind=room&name="), good.rsplit("&sig=", 1)[0],
                    LINK.url(public, key(name="alerts"), "acme", "ICU-03-MON", MONITOR),
                    LINK.url(public, key("another-secret-0123456789abcdef0123"), "acme", "ICU-03-MON", MONITOR)):
            assert (await client.get(bad)).status_code == 403, bad
        assert (await client.get(good.replace("/acme/", "/other/"))).status_code == 404
