"""The stand-in's outbox as a Feishu user sees it: every plugin card drawn without raw markup, names for
people and groups, organizations with their zones, filters, and hostile content shown, never run.

Messages go through lark-oapi over real HTTP (tests/feishu/outbox_scenes.py); the page and the JSON are
read over HTTP too. The page as Chromium renders it: test_standin_outbox_browser.py.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from outbox_scenes import CARD_V1, ENGINE, HOSTILE, LI, NEUSOFT, RENNUO, ZHANG, Bot, hostile, rendered, showcase

from engine.feishu.standin import FeishuStandIn
from engine.feishu.standin.cardview import View
from engine.feishu.standin.outbox import plugin_of
from engine.testing.browser import Element, parse_dom

CARDS = [name for name in ENGINE.names() if name.endswith(".card")]
OLD_KEYS = {"time", "message_id", "chat_id", "chat_name", "to", "msg_type", "text", "card", "reply_to", "updated",
            "deleted", "app_id", "uuid"}


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=f"cli_outbox_{uuid.uuid4().hex[:12]}", tenant_key=NEUSOFT)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def page(s: FeishuStandIn, **query: str) -> Element:
    async with httpx.AsyncClient(base_url=s.base_url) as http:
        response = await http.get("/_standin/", params={"refresh": "0", **query})
    assert response.status_code == 200
    return parse_dom(response.text)


async def outbox_json(s: FeishuStandIn) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=s.base_url) as http:
        return (await http.get("/_standin/outbox")).json()


def shown_ids(doc: Element) -> list[str]:
    return [a.attrs["id"] for a in doc.find_all("article")]


def buttons_in(card: object) -> int:
    if isinstance(card, dict):
        return (card.get("tag") == "button") + sum(buttons_in(v) for v in card.values())
    if isinstance(card, list):
        return sum(buttons_in(v) for v in card)
    return 0


@pytest.mark.parametrize("locale", ["zh_CN", "en_US"])
@pytest.mark.parametrize("name", CARDS)
def test_every_plugin_card_is_drawn_without_raw_markup(name: str, locale: str) -> None:
    """Each card a plugin sends (its sample) is drawn: header colour, no literal ** or <font>, every button."""
    card = json.loads(rendered(name, locale)[1])
    doc = parse_dom(View(lambda _id: "某人").card(card))
    text = doc.text
    assert "**" not in text and "<font" not in text and "&#" not in text, text
    assert not doc.find_all(cls="unknown"), [e.text for e in doc.find_all(cls="unknown")]
    header = doc.find_all(cls="card-header")[0]
    assert f"hdr-{card['header'].get('template', 'default')}" in header.classes
    assert len(doc.find_all("button")) == buttons_in(card)
    if "**" in json.dumps(card, ensure_ascii=False):
        assert doc.find_all("strong")


def test_card_markdown_and_text_messages_as_feishu_shows_them() -> None:
    view = View({"ou_al_zhang": "张伟"}.get)
    doc = parse_dom(view.markdown("**状态**：借出 *斜体* ~~删~~ <font color='red'>逾期</font> &#42;不是粗体&#42;\n"
                                  "- 第一项\n- <at id=ou_al_zhang></at> <at id=all></at>\n"
                                  "[文档](https://open.feishu.cn) [坏链接](javascript:alert(1))"))
    assert [e.text for e in doc.find_all("strong")] == ["状态"]
    assert [e.text for e in doc.find_all("em")] == ["斜体"] and [e.text for e in doc.find_all("s")] == ["删"]
    assert [e.text for e in doc.find_all(cls="c-red")] == ["逾期"]
    assert "*不是粗体*" in doc.text  # escaped data shows its characters, as in Feishu
    assert [e.text for e in doc.find_all("li")] == ["第一项", "@张伟 @所有人"]
    assert [a.attrs["href"] for a in doc.find_all("a")] == ["https://open.feishu.cn"]
    text = parse_dom(view.text_message('<at user_id="ou_al_zhang"></at> 请看 <b>12 床</b> **不加粗** &#42;'))
    assert [e.text for e in text.find_all(cls="at")] == ["@张伟"]
    assert [e.text for e in text.find_all("strong")] == ["12 床"]
    assert "**不加粗** &#42;" in text.text  # text messages have no markdown and show references literally


def test_a_long_line_of_unclosed_marks_is_drawn_in_linear_time() -> None:
    """150 KB (Feishu's text limit) of marks that never close: seconds at most, where a naive pattern took
    minutes; the generous bound only catches a return to quadratic time."""
    import time

    view = View()
    marks = ["[a](", "<font color=red>", "<at id=x>", "<b>", "<link url='x'>", "<text_tag color=red>"]
    started = time.perf_counter()
    for mark in marks:
        text = mark * (150_000 // len(mark))
        assert view.markdown(text)
        assert html.escape(mark) * 10 in view.text_message(text)  # shown as the text it is
    assert time.perf_counter() - started < 20


def test_card_json_1_0_is_drawn() -> None:
    doc = parse_dom(View({"ou_al_zhang": "张伟"}.get).card(CARD_V1))
    assert "hdr-turquoise" in doc.find_all(cls="card-header")[0].classes
    assert len(doc.find_all(cls="field")) == 2 and len(doc.find_all(cls="column")) == 2
    assert [b.text for b in doc.find_all("button")] == ["查看明细", "稍后提醒"]
    assert "btn-primary" in doc.find_all("button")[0].classes
    assert doc.find_all(cls="img-ph") and doc.find_all(cls="note") and doc.find_all("hr")
    assert "@张伟" in doc.text and [e.text for e in doc.find_all(cls="c-green")] == ["合格 8"]
    assert plugin_of(CARD_V1, set()) == "device_calibration"


async def test_outbox_names_people_groups_organizations_and_marks_pins_updates_replies(
        standin: FeishuStandIn) -> None:
    sent = await showcase(standin)
    rows = {row["message_id"]: row for row in await outbox_json(standin)}
    assert all(set(row) >= OLD_KEYS for row in rows.values())  # what tools read stays
    form, answer, approval = rows[sent.ids["form"]], rows[sent.ids["answer"]], rows[sent.ids["approval"]]
    assert (form["chat_name"], form["chat_type"], form["pinned"], form["plugin"]) == \
        ("重症医学科交班群", "group", True, "handover")
    assert (form["tenant_key"], form["org_name"]) == (RENNUO, "仁诺医疗集团（示例）")
    assert answer["reply_to"] and answer["tenant_key"] == RENNUO and not answer["pinned"]
    assert (approval["updated"], approval["earlier_versions"], approval["plugin"]) == (True, 1, "asset_loan")
    assert (approval["to"], approval["peer"], approval["org_name"]) == (f"张伟 ({ZHANG})", "张伟", "东软医疗（示例）")

    doc = await page(standin)
    article = doc.by_id(sent.ids["form"])
    assert article.find_all(cls="pinned") and "重症医学科交班群" in article.find_all(cls="chat")[0].text
    assert sent.group not in article.find_all(cls="chat")[0].text  # the group's name, not its id
    assert article.find_all(cls="form") and article.find_all("textarea")
    reply = doc.by_id(sent.ids["answer"])
    quote = reply.find_all(cls="quote")[0].text
    assert "刘主任" in quote and "12 床 状态" in quote and "@Stand-in Bot" in quote and "@_user_1" not in quote
    assert [e.text for e in reply.find_all(cls="at")] == ["@刘主任"]
    updated = doc.by_id(sent.ids["approval"])
    assert updated.find_all(cls="updated") and updated.find_all(cls="history")
    assert json.loads(updated.find_all(cls="raw")[0].find_all("pre")[0].text)["content"] == approval["card"]


async def test_times_are_in_the_organizations_zone_or_the_one_asked_for(standin: FeishuStandIn) -> None:
    standin.add_tenant("t_berlin", name="Charité (example)", timezone="Europe/Berlin", plugins=[])
    standin.add_user("ou_berlin", name="Anna", tenant_key="t_berlin")
    bot = Bot(standin)
    berlin = await bot.send("ou_berlin", ("text", json.dumps({"text": "Guten Morgen"})))
    shanghai = await bot.send(LI, ("text", json.dumps({"text": "早上好"})))
    rows = {row["message_id"]: row for row in await outbox_json(standin)}
    for message_id, zone in ((berlin, "Europe/Berlin"), (shanghai, "Asia/Shanghai")):
        row = rows[message_id]
        moment = datetime.fromtimestamp(int(row["create_time"]) / 1000, UTC).astimezone(ZoneInfo(zone))
        assert (row["zone"], row["time"]) == (zone, moment.strftime("%Y-%m-%d %H:%M:%S"))
        assert row["time_iso"] == moment.isoformat(timespec="seconds")

    doc = await page(standin)
    assert doc.by_id(berlin).find_all("time")[0].find_all(cls="zone")[0].text == "Europe/Berlin"
    assert "Charité (example): Europe/Berlin" in doc.by_id("zone-note").text
    asked = await page(standin, tz="America/New_York")
    assert {t.find_all(cls="zone")[0].text for t in asked.find_all("time")} == {"America/New_York"}
    wrong = await page(standin, tz="Mars/Base")
    assert "Unknown time zone Mars/Base" in wrong.by_id("zone-note").text
    assert wrong.by_id(berlin).find_all(cls="zone")[0].text == "Europe/Berlin"


async def test_filters_by_organization_and_plugin(standin: FeishuStandIn) -> None:
    sent = await showcase(standin)
    rennuo = await page(standin, org=RENNUO)
    assert set(shown_ids(rennuo)) == {sent.ids["form"], sent.ids["answer"]}
    loans = await page(standin, plugin="asset_loan")
    assert set(shown_ids(loans)) == {sent.ids["approval"], sent.ids["reminder"]}
    texts = await page(standin, plugin="-")
    assert set(shown_ids(texts)) == {sent.ids["stage"], sent.ids["answer"]}
    both = await page(standin, org=NEUSOFT, plugin="device_calibration")
    assert set(shown_ids(both)) == {sent.ids["v1"], sent.ids["calibration"]}
    group = await page(standin, chat=sent.group)
    assert set(shown_ids(group)) == {sent.ids["form"], sent.ids["answer"]}
    options = [o.attrs["value"] for o in rennuo.by_id("f-org").find_all("option")]
    assert options[0] == "" and {NEUSOFT, RENNUO} <= set(options)


async def test_a_user_who_acted_in_another_organization_gets_messages_filed_there(standin: FeishuStandIn) -> None:
    standin.add_tenant(RENNUO, name="仁诺", timezone="Asia/Shanghai")
    standin.add_user("ou_nurse", name="护士长")
    standin.message_event("我的交班", "oc_p2p_nurse", "ou_nurse", chat_type="p2p", tenant_key=RENNUO)
    message_id = await Bot(standin).send("ou_nurse", ("text", json.dumps({"text": "收到"})))
    row = next(r for r in await outbox_json(standin) if r["message_id"] == message_id)
    assert (row["tenant_key"], row["org_name"], row["to_name"]) == (RENNUO, "仁诺", "护士长")


async def test_a_rich_text_post_is_drawn(standin: FeishuStandIn) -> None:
    post = {"zh_cn": {"title": "本周交付", "content": [
        [{"tag": "text", "text": "进度：", "style": ["bold"]}, {"tag": "a", "href": "https://open.feishu.cn",
                                                              "text": "看板"}, {"tag": "at", "user_id": LI}],
        [{"tag": "img", "image_key": "img_v3_x"}], [{"tag": "code_block", "language": "PYTHON", "text": "x < 1"}]]}}
    message_id = await Bot(standin).send(ZHANG, ("post", json.dumps(post, ensure_ascii=False)))
    standin.add_user(LI, name="李娜")
    article = (await page(standin)).by_id(message_id)
    assert article.find_all(cls="post-title")[0].text == "本周交付"
    assert [e.text for e in article.find_all("strong")] == ["进度："]
    assert [a.attrs["href"] for a in article.find_all("a")] == ["https://open.feishu.cn"]
    assert [e.text for e in article.find_all(cls="at")] == ["@李娜"] and article.find_all(cls="img-ph")
    assert article.find_all("pre")[0].text == "x < 1"


def test_tenants_are_saved_with_the_state() -> None:
    first = FeishuStandIn(app_id="cli_outbox_saved")
    first.add_tenant(RENNUO, name="仁诺", timezone="Asia/Shanghai", plugins=["handover"])
    second = FeishuStandIn(app_id="cli_outbox_loaded")
    second.state.merge_json(json.loads(json.dumps(first.state.to_json())))
    assert second.state.tenants[RENNUO] == {"tenant_key": RENNUO, "name": "仁诺", "timezone": "Asia/Shanghai",
                                            "plugins": ["handover"]}


ALLOWED_TAGS = {"#document", "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "a", "form",
                "label", "select", "option", "input", "button", "b", "code", "main", "article", "div", "span",
                "small", "time", "details", "summary", "pre", "strong", "em", "s", "u", "ul", "ol", "li", "hr",
                "br", "textarea", "h3", "h4", "h5", "h6"}


async def test_hostile_content_is_shown_as_text_and_never_becomes_markup(standin: FeishuStandIn) -> None:
    sent = await hostile(standin)
    async with httpx.AsyncClient(base_url=standin.base_url) as http:
        raw = (await http.get("/_standin/")).text
    doc = parse_dom(raw)
    elements = doc.iter()
    assert {e.tag for e in elements} - ALLOWED_TAGS == {"script"}
    scripts = doc.find_all("script")
    assert len(scripts) == 1 and scripts[0].attrs.get("nonce")  # the page's own reload, nothing else
    assert not [(e.tag, k) for e in elements for k in e.attrs if k.startswith("on")]
    assert all(a.attrs["href"].startswith(("/_standin/", "?chat=", "https://", "http://"))
               for a in doc.find_all("a"))
    assert all(cls.startswith(("hdr-", "btn", "c-", "tag")) or cls.isidentifier() or "-" in cls
               for e in elements for cls in e.classes)
    assert "script-src 'nonce-" in doc.find_all("meta")[1].attrs["content"]
    text, card = doc.by_id(sent.ids["text"]), doc.by_id(sent.ids["card"])
    assert HOSTILE in text.find_all(cls="bubble")[0].text  # shown exactly as sent
    assert HOSTILE in card.find_all(cls="card-title")[0].text
    assert "hdr-default" in card.find_all(cls="card-header")[0].classes
    assert HOSTILE in card.find_all("button")[0].text and "btn-default" in card.find_all("button")[0].classes
    assert card.find_all("input")[0].attrs["placeholder"] == HOSTILE
    named, group = doc.by_id(sent.ids["named"]), doc.by_id(sent.ids["group"])
    assert [e.text for e in named.find_all(cls="at")] == [f"@{HOSTILE}"]
    assert HOSTILE in named.find_all(cls="chat")[0].text and named.find_all(cls="org")[0].text == HOSTILE
    assert HOSTILE in group.find_all(cls="chat")[0].text
    assert any(HOSTILE in option.text for option in doc.by_id("f-org").find_all("option"))
    assert len(doc.find_all("article")) == 4  # nothing broke out of its message
