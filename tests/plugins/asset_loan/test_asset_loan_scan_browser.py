"""The scan page a label opens, in headless Chromium (Debian's ``chromium``; skipped with the install
command when missing): the browser follows the Feishu web login through the stand-in and back, keeps the
session cookie, and shows the asset with the actions of the person who scanned it.

``ENGINE_SCREENSHOTS=docs/images`` (``make screenshots``) also writes the README's ``scan-page.png``.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import plugins.asset_loan as asset_loan
from engine import labels as signing
from engine.runtime.server import free_port
from engine.secrets import derive
from engine.testing.browser import dump_dom, parse_dom, require_chromium, screenshot
from engine.testing.kit import org_config
from plugins.asset_loan.labels import LINK

REPO = Path(__file__).parents[3]
SEED = json.loads((REPO / "examples" / "asset_loan" / "inventory.json").read_text("utf-8"))
SECRET = "test-asset-loan-browser-secret-0123456789"


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", SECRET)
    monkeypatch.delenv("ASSET_LOAN_SIGNING_KEY_PREVIOUS", raising=False)


async def test_chromium_scans_a_label_logs_in_through_feishu_and_sees_the_asset(scenario_harness: Any,
                                                                                tmp_path: Path) -> None:
    require_chromium()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    document = org_config(plugins=["asset_loan"])
    document["ingress"] = {"public_url": public}
    async with scenario_harness({"asset_loan": asset_loan}, config=document) as env, env.serve_plugin_routes(port):
        env.standin.state.merge_json(SEED)
        env.standin.oauth_default_user = "ou_al_li"  # who is logged in to Feishu on this phone
        links = derive(SECRET.encode(), org="acme", scenario="asset_loan", name="signing", purpose=signing.LINKS)
        url = LINK.url(public, links, "acme", "RD-OSC-001")
        # the browser blocks while it runs: off the loop that serves the page, the stand-in and the workflow
        doc = parse_dom(await asyncio.to_thread(dump_dom, url, width=420, height=760))
        assert [h.text for h in doc.find_all("h1")] == ["示波器 Tek MDO34"]
        assert "您好, 李娜" in doc.text  # logged in through the stand-in's Feishu web login
        terms = {dt.text: dd.text for dt, dd in zip(doc.find_all("dt"), doc.find_all("dd"), strict=True)}
        assert terms["状态"] == "在库" and terms["保管人"] == "张伟"
        buttons = doc.find_all("button")
        assert [(b.text, b.attrs.get("value")) for b in buttons][:1] == [("借用", "borrow")]
        assert "primary" in buttons[0].classes
        assert [i.attrs["type"] for i in doc.find_all("input") if i.attrs.get("name") == "due"] == ["date"]

        folder = Path(os.environ["ENGINE_SCREENSHOTS"]) if os.environ.get("ENGINE_SCREENSHOTS") else tmp_path
        picture = await asyncio.to_thread(screenshot, url, folder / "scan-page.png", width=420, height=760)
        with Image.open(picture) as image:
            assert image.size == (420, 760)
            # the primary button is painted Feishu blue (#3370ff)
            assert any(colour == (0x33, 0x70, 0xFF) for _, colour in image.convert("RGB").getcolors(420 * 760) or [])
