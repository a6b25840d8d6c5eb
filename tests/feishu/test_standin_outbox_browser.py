"""The outbox page as headless Chromium renders it (Debian's ``chromium``; skipped with the install command
when it is missing): what a Feishu user would see of the plugins' messages, and hostile content inert.

``ENGINE_SCREENSHOTS=docs/images`` (``make screenshots``) also writes the README's ``outbox.png`` and each
monthly report's ``report-<scenario>-<name>.png``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from outbox_scenes import ENGINE, NEUSOFT, Bot, hostile, people, rendered, showcase
from PIL import Image

from engine.feishu.standin import FeishuStandIn
from engine.testing.browser import dump_dom, parse_dom, require_chromium, screenshot


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    require_chromium()
    s = FeishuStandIn(app_id=f"cli_browser_{uuid.uuid4().hex[:12]}", tenant_key=NEUSOFT)
    await s.start(in_thread=True)  # the browser is a blocking subprocess: the stand-in serves from its own thread
    try:
        yield s
    finally:
        await s.stop()


def images_dir(tmp_path: Path) -> Path:
    return Path(os.environ["ENGINE_SCREENSHOTS"]) if os.environ.get("ENGINE_SCREENSHOTS") else tmp_path


async def test_chromium_shows_the_outbox_as_feishu_would(standin: FeishuStandIn, tmp_path: Path) -> None:
    sent = await showcase(standin)
    url = f"{standin.base_url}/_standin/?refresh=0"
    doc = parse_dom(dump_dom(url))

    reminder = doc.by_id(sent.ids["reminder"])
    assert "hdr-orange" in reminder.find_all(cls="card-header")[0].classes
    assert [e.text for e in reminder.find_all("strong")] == ["示波器 Tek MDO34", "2026年03月12日"]
    assert [b.text for b in reminder.find_all("button")] == ["续借"]
    assert "btn-primary" in reminder.find_all("button")[0].classes
    assert reminder.find_all("time")[0].find_all(cls="zone")[0].text == "Asia/Shanghai"
    assert "李娜" in reminder.find_all(cls="chat")[0].text

    calibration = doc.by_id(sent.ids["calibration"])
    assert "hdr-blue" in calibration.find_all(cls="card-header")[0].classes
    assert calibration.find_all(cls="c-grey") and "<font" not in calibration.find_all(cls="card")[0].text
    assert calibration.find_all(cls="form") and calibration.find_all("input") and calibration.find_all(cls="date")

    answer = doc.by_id(sent.ids["answer"])
    assert [e.text for e in answer.find_all(cls="at")] == ["@刘主任"]
    assert "刘主任" in answer.find_all(cls="quote")[0].text
    assert doc.by_id(sent.ids["form"]).find_all(cls="pinned")
    assert doc.by_id(sent.ids["approval"]).find_all(cls="updated")
    assert "@孙浩" in doc.by_id(sent.ids["stage"]).text
    assert "Asia/Shanghai" in doc.by_id("zone-note").text

    picture = screenshot(url, images_dir(tmp_path) / "outbox.png", width=900, height=1500)
    with Image.open(picture) as image:
        assert image.size == (900, 1500)
        # the first card's header (the newest message: the asset reminder) is painted orange, not white
        colours = image.convert("RGB").getcolors(900 * 1500) or []
        assert any(r > 240 and 200 < g < 245 and b < 225 for _, (r, g, b) in colours)


# The monthly reports people read (their sample contexts), each shown in both languages as the outbox draws it.
REPORTS = ("repair:monthly.card", "engine:approval_report.card", "recruiting:report.card", "recruiting:hr_report.card",
           "device_calibration:outcome.card", "asset_loan:outcome.card", "handover:outcome.card",
           "project_delivery:outcome.card")


@pytest.mark.parametrize("name", REPORTS)
async def test_chromium_shows_each_monthly_report_with_its_charts(standin: FeishuStandIn, tmp_path: Path,
                                                                  name: str) -> None:
    people(standin)
    bot, reader = Bot(standin), f"ou_reader_{uuid.uuid4().hex[:8]}"
    standin.add_user(reader, name="院长", tenant_key=NEUSOFT)
    ids = [await bot.send(reader, rendered(name, locale)) for locale in ("zh_CN", "en_US")]
    charts = json.dumps(json.loads(rendered(name)[1])).count('"tag": "chart"')
    chat = standin.state.messages[ids[0]]["chat_id"]
    url = f"{standin.base_url}/_standin/?refresh=0&chat={chat}"
    doc = parse_dom(dump_dom(url))
    for message_id in ids:
        article = doc.by_id(message_id)
        assert not article.find_all(cls="unknown"), name  # every element drawn
        assert len(article.find_all("svg")) == charts, name
    assert ENGINE.sample_context(name)  # the picture is of the sample the template ships
    picture = screenshot(url, images_dir(tmp_path) / f"report-{name.replace(':', '-').replace('.card', '')}.png",
                         width=900, height=1400)
    with Image.open(picture) as image:
        assert image.size == (900, 1400)


async def test_chromium_runs_none_of_a_hostile_messages_markup(standin: FeishuStandIn) -> None:
    sent = await hostile(standin)
    doc = parse_dom(dump_dom(f"{standin.base_url}/_standin/?refresh=0"))
    body = doc.find_all("body")[0]
    assert "data-pwned" not in body.attrs  # neither the <script> nor the onerror handler ran
    assert not doc.find_all("img") and not doc.find_all("iframe")
    assert not doc.find_all("script") and len(doc.find_all("article")) == 4  # ?refresh=0: no script of its own
    assert "<script>" in doc.by_id(sent.ids["text"]).text
