"""The scan page over real HTTP (uvicorn) with the stand-in's Feishu web login, signed-link tampering, and
the label sheet produced by the ``engine asset_loan labels`` command and read back with a QR decoder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from click.testing import CliRunner

import plugins.asset_loan as asset_loan
from engine import labels as signing
from engine.runtime.server import free_port
from engine.scan_page import read_payload
from engine.secrets import derive
from engine.testing.kit import org_config
from plugins.asset_loan.labels import LINK

REPO = Path(__file__).parents[3]
INVENTORY = REPO / "examples" / "asset_loan" / "inventory.json"
SEED = json.loads(INVENTORY.read_text("utf-8"))
SECRET = "test-asset-loan-secret-0123456789abcdef"
OLD_SECRET = "test-asset-loan-old-secret-0123456789abcdef"
BORROWER, OTHER, KEEPER = "ou_al_li", "ou_al_wang", "ou_al_zhang"


def key(purpose: str, secret: str = SECRET, org: str = "acme") -> bytes:
    """What the scan page signs ``purpose`` with for ``org`` (engine.secrets' derivation)."""
    return derive(secret.encode(), org=org, scenario="asset_loan", name="signing", purpose=purpose)


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", SECRET)
    monkeypatch.delenv("ASSET_LOAN_SIGNING_KEY_PREVIOUS", raising=False)


def csrf_of(page: str) -> str:
    match = re.search(r"name='csrf' value='([^']+)'", page)
    assert match, page
    return match.group(1)


async def test_scan_page_login_borrow_and_return(scenario_harness: Any) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    # the history table has the scan-time column: the page's presses are stamped in their rows
    document = org_config(plugins=["asset_loan"],
                          settings={"asset_loan": {"history_fields": {"scanned_at": "扫码时间"}}})
    document["ingress"] = {"public_url": public}
    async with scenario_harness({"asset_loan": asset_loan}, config=document) as env, env.serve_plugin_routes(port):
        env.standin.state.merge_json(SEED)
        url = LINK.url(public, key(signing.LINKS), "acme", "RD-OSC-001")
        env.standin.oauth_default_user = BORROWER
        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
            # no session: the page sends the browser through Feishu's authorize endpoint and back
            first = await browser.get(url)
            hops = [str(r.url) for r in first.history]
            assert any("/open-apis/authen/v1/authorize?" in hop for hop in hops), hops
            assert any("/asset_loan/auth/callback?code=" in hop for hop in hops), hops
            assert first.status_code == 200 and "示波器 Tek MDO34" in first.text and "李娜" in first.text
            assert "value='borrow'" in first.text and "type='date'" in first.text

            posted = await browser.post(url, data={"op": "borrow", "csrf": csrf_of(first.text),
                                                   "request_id": "r1"})
            assert posted.status_code == 200 and "请于" in posted.text, posted.text
            assert "value='return'" in posted.text and "value='extend'" in posted.text
            await env.settle()  # the page answers first; the row is written after
            row = env.standin.state.table("bascnAssetLoan", "tblAssets")["records"]["recAsset001"]["fields"]
            assert row["状态"] == "借出" and row["借用人"][0]["id"] == BORROWER

            # a forged form (no csrf token) is refused
            forged = await browser.post(url, data={"op": "return", "csrf": "nope"})
            assert forged.status_code == 403

        # another person scanning sees who has it and since when, and no borrow button
        env.standin.oauth_default_user = OTHER
        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as other:
            page = await other.get(url)
            assert "王芳" in page.text and "李娜" in page.text and "value='borrow'" not in page.text
            # no forms for a bystander; even a well-formed POST is refused by the workflow
            token = signing.mac(key(signing.CSRF), "asset_loan", "csrf", other.cookies.get("asset_loan_session", ""))
            sneaky = await other.post(url, data={"op": "return", "csrf": token})
            assert "只有借用人" in sneaky.text

        # the keeper confirms the return from the page
        env.standin.oauth_default_user = KEEPER
        async with httpx.AsyncClient(follow_redirects=True, timeout=30) as keeper:
            page = await keeper.get(url)
            assert "确认归还" in page.text
            done = await keeper.post(url, data={"op": "return", "csrf": csrf_of(page.text), "request_id": "r2"})
            assert "已归还" in done.text and "value='borrow'" in done.text
        await env.settle()
        table = env.standin.state.table("bascnAssetLoan", "tblAssetHistory")
        history = [r["fields"] for r in table["records"].values()]
        stamped = {h["动作"]: h["扫码时间"] for h in history if "扫码时间" in h}
        assert set(stamped) == {"borrow", "return"} and all(isinstance(v, int) and v > 0 for v in stamped.values())


async def test_tampered_links_are_rejected(scenario_harness: Any) -> None:
    port = free_port()
    document = org_config(plugins=["asset_loan"])
    document["ingress"] = {"public_url": f"http://127.0.0.1:{port}"}
    async with scenario_harness({"asset_loan": asset_loan}, config=document) as env, env.serve_plugin_routes(port):
        good = LINK.url(f"http://127.0.0.1:{port}", key(signing.LINKS), "acme", "RD-OSC-001")
        sig = good.rsplit("=", 1)[1]
        async with httpx.AsyncClient(timeout=10) as client:
            ok = await client.get(good)
            assert ok.status_code == 302  # to the login, not refused
            for bad in (good.replace("RD-OSC-001", "RD-OSC-002"), good.rsplit("?", 1)[0],
                        good.replace(sig, sig[::-1]), good.replace("/acme/", "/other/")):
                answer = await client.get(bad)
                assert answer.status_code in (403, 404), bad
            assert (await client.get(good.replace("RD-OSC-001", "RD-OSC-002"))).status_code == 403
            # a callback with a forged state never sets a session
            forged = await client.get(f"http://127.0.0.1:{port}/asset_loan/auth/callback?code=x&state=abc.def")
            assert forged.status_code == 403 and "asset_loan_session" not in forged.headers.get("set-cookie", "")
            # a link signed with another purpose's key (a CSRF token's, a session's) is no link
            for purpose in (signing.CSRF, signing.SESSIONS, signing.LOGIN_STATE):
                other = LINK.url(f"http://127.0.0.1:{port}", key(purpose), "acme", "RD-OSC-001")
                assert (await client.get(other)).status_code == 403, purpose


async def test_rotation_keeps_old_links_for_the_grace_period(scenario_harness: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    document = org_config(plugins=["asset_loan"])
    document["ingress"] = {"public_url": base}
    old_link = LINK.url(base, key(signing.LINKS, OLD_SECRET), "acme", "RD-OSC-001")
    new_link = LINK.url(base, key(signing.LINKS), "acme", "RD-OSC-001")
    async with (scenario_harness({"asset_loan": asset_loan}, config=document) as env, env.serve_plugin_routes(port),
                httpx.AsyncClient(timeout=10) as client):
        # before the rotation's grace period is declared, a label printed with the old secret is refused
        assert (await client.get(old_link)).status_code == 403
        monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY_PREVIOUS", f"{OLD_SECRET}, another-retired-secret")
        assert (await client.get(old_link)).status_code == 302  # accepted: on to the login
        assert (await client.get(new_link)).status_code == 302
        # the login it starts carries state signed with the current secret's login-state key
        login = (await client.get(old_link)).headers["location"]
        state = dict(parse_qsl(urlsplit(login).query))["state"]
        assert read_payload(key(signing.LOGIN_STATE), state) is not None
        assert read_payload(key(signing.LOGIN_STATE, OLD_SECRET), state) is None
        monkeypatch.delenv("ASSET_LOAN_SIGNING_KEY_PREVIOUS")  # the grace period is over
        assert (await client.get(old_link)).status_code == 403
        assert (await client.get(new_link)).status_code == 302


def test_label_sheet_from_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli import cli

    config = tmp_path / "engine.toml"
    config.write_text('[ingress]\npublic_url = "https://loans.example.org"\n\n'
                      '[organizations.acme]\nplugins = ["asset_loan"]\n', encoding="utf-8")
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "asset_loan")
    out, pngs = tmp_path / "labels.svg", tmp_path / "png"
    result = CliRunner().invoke(cli, ["--config", str(config), "asset_loan", "labels", "--org", "acme",
                                      "--inventory", str(INVENTORY), "--out", str(out), "--png-dir", str(pngs)])
    assert result.exit_code == 0, result.output
    assert "10 label(s)" in result.output
    sheet = out.read_text("utf-8")
    assert sheet.startswith("<svg") and sheet.count('class="label"') == 10
    assert "RD-OSC-001" in sheet and "示波器 Tek MDO34" in sheet and sheet.count("<path") >= 10

    some = tmp_path / "some.svg"
    result = CliRunner().invoke(cli, ["--config", str(config), "asset_loan", "labels", "--org", "acme",
                                      "--inventory", str(INVENTORY), "--asset", "RD-PHN-005", "--out", str(some)])
    assert result.exit_code == 0 and some.read_text("utf-8").count('class="label"') == 1
    missing = CliRunner().invoke(cli, ["--config", str(config), "asset_loan", "labels", "--org", "acme",
                                       "--inventory", str(INVENTORY), "--asset", "NOPE", "--out", str(some)])
    assert missing.exit_code != 0 and "NOPE" in missing.output

    # the printed code reads back as the signed link (zxing-cpp and pillow are in the test extra)
    import zxingcpp
    from PIL import Image

    decoded = zxingcpp.read_barcodes(Image.open(pngs / "RD-OSC-001.png"))
    assert [code.text for code in decoded] == [
        LINK.url("https://loans.example.org", key(signing.LINKS), "acme", "RD-OSC-001")]


def test_labels_without_a_secret_use_the_state_dirs_development_secret(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """No [feishu] table and no variable: `engine dev` and the labels command share one generated secret."""
    from engine.cli import cli
    from engine.config import load_config
    from engine.plugins import load_plugins

    monkeypatch.delenv("ASSET_LOAN_SIGNING_KEY")
    config = tmp_path / "engine.toml"
    config.write_text('[organizations.acme]\nplugins = ["asset_loan"]\n', encoding="utf-8")
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "asset_loan")
    out, pngs = tmp_path / "labels.svg", tmp_path / "png"
    result = CliRunner().invoke(cli, ["--config", str(config), "asset_loan", "labels", "--org", "acme",
                                      "--inventory", str(INVENTORY), "--asset", "RD-OSC-001", "--out", str(out),
                                      "--png-dir", str(pngs)])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / ".state" / "secrets.json").read_text("utf-8"))
    secret = stored["ASSET_LOAN_SIGNING_KEY"]
    assert len(secret) >= 32 and secret not in {SECRET, "asset-loan-dev-signing-key-not-for-production"}
    import zxingcpp
    from PIL import Image

    [code] = zxingcpp.read_barcodes(Image.open(pngs / "RD-OSC-001.png"))
    assert code.text == LINK.url("http://127.0.0.1:8080", key(signing.LINKS, secret), "acme", "RD-OSC-001")
    # a restart (a fresh load of the config) verifies with the same key
    scenarios = load_plugins(modules={"asset_loan": asset_loan}, entry_points=False).scenarios
    org = load_config(config, scenarios).org("acme")
    assert org.keyring("asset_loan").key(signing.LINKS) == key(signing.LINKS, secret)
