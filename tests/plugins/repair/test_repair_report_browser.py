"""The report page a repair label opens, in headless Chromium (Debian's ``chromium``; skipped with the install
command when missing): the browser follows the Feishu web login through the stand-in and back, and shows
the label's equipment already filled in, with the box for the fault and the send button."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from repair_helpers import report_pages

from engine.labels import LINKS
from engine.secrets import derive
from engine.testing.browser import dump_dom, parse_dom, require_chromium
from plugins.repair.labels import LINK

SECRET = "test-repair-browser-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPAIR_SIGNING_KEY", SECRET)
    monkeypatch.delenv("REPAIR_SIGNING_KEY_PREVIOUS", raising=False)


async def test_chromium_scans_an_equipment_label_and_sees_the_report_form_filled_in(scenario_harness: Any) -> None:
    require_chromium()
    async with report_pages(scenario_harness) as (_, public):
        key = derive(SECRET.encode(), org="acme", scenario="repair", name="signing", purpose=LINKS)
        url = LINK.url(public, key, "acme", "ICU-03-MON", {"name": "ICU 3床监护仪"})
        # the browser blocks while it runs: off the loop that serves the page and the stand-in
        doc = parse_dom(await asyncio.to_thread(dump_dom, url, width=420, height=760))
        assert [h.text for h in doc.find_all("h1")] == ["报修"]
        assert "您好, 李娜" in doc.text  # logged in through the stand-in's Feishu web login
        terms = {dt.text: dd.text for dt, dd in zip(doc.find_all("dt"), doc.find_all("dd"), strict=True)}
        assert terms == {"设备": "ICU 3床监护仪", "编号": "ICU-03-MON"}
        assert [t.attrs.get("name") for t in doc.find_all("textarea")] == ["text"]
        (button,) = doc.find_all("button")
        assert button.text == "提交报修" and "primary" in button.classes
