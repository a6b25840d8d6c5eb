"""Outboxes to look at: the plugins' own cards and texts (rendered from their templates' samples), sent,
replied, updated and pinned through lark-oapi over real HTTP, in two organizations; and a hostile one.

Used by the outbox page's tests (tests/feishu/test_standin_outbox*.py), which also make the README's
screenshot from :func:`showcase`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import lark_oapi as lark
from lark_oapi.api.im.v1 import (
    CreateChatRequest,
    CreateChatRequestBody,
    CreateMessageRequest,
    CreateMessageRequestBody,
    CreatePinRequest,
    CreatePinRequestBody,
    PatchMessageRequest,
    PatchMessageRequestBody,
    ReplyMessageRequest,
    ReplyMessageRequestBody,
)

import plugins.asset_loan as asset_loan
import plugins.device_calibration as device_calibration
import plugins.handover as handover
import plugins.project_delivery as project_delivery
import plugins.recruiting as recruiting
import plugins.repair as repair
from engine.feishu.standin import FeishuStandIn
from engine.plugins import load_plugins
from engine.templates import TemplateEngine

NEUSOFT, RENNUO = "t_neusoft", "t_rennuo"
LI, ZHANG, SE, HEAD = "ou_al_li", "ou_al_zhang", "ou_se_north", "ou_head_icu"
# what a user could type or put in a Bitable cell, aimed at the page that shows it
HOSTILE = ('<script>document.body.dataset.pwned="1"</script><img src=x onerror="document.body.dataset.pwned=2">'
           '</div></article><h1>broken out</h1>"\'><iframe src="javascript:alert(1)"></iframe>')
# a card 1.0 (header + elements), as Feishu still accepts: fields, columns, note, action, image
CARD_V1 = {
    "config": {"wide_screen_mode": True},
    "header": {"template": "turquoise", "title": {"tag": "plain_text", "content": "月度校准汇总（卡片 1.0）"}},
    "elements": [
        {"tag": "div", "text": {"tag": "lark_md", "content": "本月到期 **12** 台，*已送检* 9 台，~~取消~~ 1 台"},
         "fields": [{"is_short": True, "text": {"tag": "lark_md", "content": "**科室**\n放射科"}},
                    {"is_short": True, "text": {"tag": "lark_md", "content": "**负责人**\n<at id=ou_al_zhang></at>"}}]},
        {"tag": "column_set", "columns": [
            {"tag": "column", "width": "weighted", "weight": 1,
             "elements": [{"tag": "markdown", "content": "<font color='green'>合格 8</font>"}]},
            {"tag": "column", "width": "weighted", "weight": 1,
             "elements": [{"tag": "markdown", "content": "<font color='red'>不合格 1</font>"}]}]},
        {"tag": "img", "img_key": "img_v3_example", "alt": {"tag": "plain_text", "content": "趋势图"}},
        {"tag": "hr"},
        {"tag": "action", "actions": [
            {"tag": "button", "text": {"tag": "plain_text", "content": "查看明细"}, "type": "primary",
             "value": {"scenario": "device_calibration", "op": "details"}},
            {"tag": "button", "text": {"tag": "plain_text", "content": "稍后提醒"}, "type": "default",
             "value": {"scenario": "device_calibration", "op": "snooze"}}]},
        {"tag": "note", "elements": [{"tag": "plain_text", "content": "数据来自设备台账，每周一更新"}]},
    ],
}


def templates() -> TemplateEngine:
    modules = {"asset_loan": asset_loan, "device_calibration": device_calibration, "handover": handover,
               "project_delivery": project_delivery, "recruiting": recruiting, "repair": repair}
    plugin_set = load_plugins(modules=modules, entry_points=False)
    return TemplateEngine(plugin_set.template_dirs(), plugin_set.template_filters())


ENGINE = templates()


def rendered(name: str, locale: str = "zh_CN", **changes: Any) -> tuple[str, str]:
    """``(msg_type, content)`` of a plugin template rendered with its sample context (and ``changes``)."""
    context = {**ENGINE.sample_context(name), **changes}
    message = ENGINE.render_message(name, context, locale=locale)
    return message.msg_type, message.content


@dataclass
class Sent:
    """What a scene sent: message ids by a short name, and the group chat's id."""

    ids: dict[str, str] = field(default_factory=dict)
    group: str = ""


class Bot:
    """The engine's side of a scene: lark-oapi's real client, called off the loop that serves the stand-in."""

    def __init__(self, standin: FeishuStandIn) -> None:
        self.client = (lark.Client.builder().app_id(standin.app_id).app_secret(standin.app_secret)
                       .domain(standin.base_url).log_level(lark.LogLevel.ERROR).build())

    async def _call(self, fn: Any, request: Any) -> Any:
        response = await asyncio.to_thread(fn, request)
        assert response.success(), (response.code, response.msg)
        return getattr(response, "data", None)

    async def send(self, to: str, message: tuple[str, str], id_type: str = "open_id") -> str:
        msg_type, content = message
        body = CreateMessageRequestBody.builder().receive_id(to).msg_type(msg_type).content(content).build()
        request = CreateMessageRequest.builder().receive_id_type(id_type).request_body(body).build()
        return str((await self._call(self.client.im.v1.message.create, request)).message_id)

    async def reply(self, parent: str, message: tuple[str, str]) -> str:
        msg_type, content = message
        body = ReplyMessageRequestBody.builder().msg_type(msg_type).content(content).build()
        request = ReplyMessageRequest.builder().message_id(parent).request_body(body).build()
        return str((await self._call(self.client.im.v1.message.reply, request)).message_id)

    async def update(self, message_id: str, card: str) -> None:
        body = PatchMessageRequestBody.builder().content(card).build()
        await self._call(self.client.im.v1.message.patch,
                         PatchMessageRequest.builder().message_id(message_id).request_body(body).build())

    async def pin(self, message_id: str) -> None:
        body = CreatePinRequestBody.builder().message_id(message_id).build()
        await self._call(self.client.im.v1.pin.create, CreatePinRequest.builder().request_body(body).build())

    async def group(self, name: str, members: list[str]) -> str:
        body = CreateChatRequestBody.builder().name(name).user_id_list(members).build()
        request = CreateChatRequest.builder().user_id_type("open_id").request_body(body).build()
        return str((await self._call(self.client.im.v1.chat.create, request)).chat_id)


def people(standin: FeishuStandIn) -> None:
    """Two organizations (named, with their zones and plugins) and their people."""
    standin.add_tenant(NEUSOFT, name="东软医疗（示例）", timezone="Asia/Shanghai",
                       plugins=["asset_loan", "device_calibration", "project_delivery"])
    standin.add_tenant(RENNUO, name="仁诺医疗集团（示例）", timezone="Asia/Shanghai",
                       plugins=["handover", "recruiting"])
    standin.add_user(LI, name="李娜")
    standin.add_user(ZHANG, name="张伟")
    standin.add_user(SE, name="孙浩")
    standin.add_user(HEAD, name="刘主任", tenant_key=RENNUO)


async def showcase(standin: FeishuStandIn) -> Sent:
    """The plugins' messages as `engine dev` sends them: cards, a form, texts with @mentions, a reply in a
    group, an updated card and a pinned one."""
    people(standin)
    bot, sent = Bot(standin), Sent()
    sent.ids["v1"] = await bot.send(ZHANG, ("interactive", json.dumps(CARD_V1, ensure_ascii=False)))
    sent.ids["stage"] = await bot.send(SE, rendered("project_delivery:stage_changed"))
    sent.ids["approval"] = await bot.send(ZHANG, rendered("asset_loan:approval.card"))
    await bot.update(sent.ids["approval"], rendered("asset_loan:asset.card", status="on_loan", status_label="借出")[1])
    sent.group = await bot.group("重症医学科交班群", [HEAD])
    sent.ids["form"] = await bot.send(sent.group, rendered("handover:form.card"), id_type="chat_id")
    await bot.pin(sent.ids["form"])
    question = standin.message_event("12 床 状态", sent.group, HEAD, tenant_key=RENNUO)
    sent.ids["answer"] = await bot.reply(question["message"]["message_id"], (
        "text", json.dumps({"text": '<at user_id="ou_head_icu"></at> 12 床 张某：稳定，待补充 1 项'},
                           ensure_ascii=False)))
    sent.ids["calibration"] = await bot.send(ZHANG, rendered("device_calibration:reminder.card"))
    sent.ids["reminder"] = await bot.send(LI, rendered("asset_loan:reminder.card"))
    return sent


async def hostile(standin: FeishuStandIn) -> Sent:
    """Messages whose content tries to break out of the page: in text, card titles, markdown, buttons."""
    people(standin)
    bot, sent = Bot(standin), Sent()
    sent.ids["text"] = await bot.send(LI, ("text", json.dumps({"text": HOSTILE})))
    card = {"schema": "2.0",
            "header": {"template": 'red" onmouseover="x', "title": {"tag": "plain_text", "content": HOSTILE}},
            "body": {"elements": [
                {"tag": "markdown", "content": f"**{HOSTILE}** <font color='red\" onclick=\"x'>x</font> "
                                               "[link](javascript:alert(1)) <at id=\"\\\"><img src=x>\"></at>"},
                {"tag": HOSTILE},
                {"tag": "button", "type": 'primary" onclick="x', "text": {"tag": "plain_text", "content": HOSTILE},
                 "behaviors": [{"type": "callback", "value": {"scenario": HOSTILE, "op": HOSTILE}}]},
                {"tag": "input", "name": "x", "placeholder": {"tag": "plain_text", "content": HOSTILE},
                 "default_value": HOSTILE}]}}
    sent.ids["card"] = await bot.send(LI, ("interactive", json.dumps(card)))
    # the names the page shows are data too: a person's, a group's, an organization's
    standin.add_tenant("t_hostile", name=HOSTILE, timezone="Asia/Shanghai")
    standin.add_user("ou_hostile", name=HOSTILE, tenant_key="t_hostile")
    mention = {"text": '<at user_id="ou_hostile"></at> ' + HOSTILE}
    sent.ids["named"] = await bot.send("ou_hostile", ("text", json.dumps(mention)))
    sent.group = await bot.group(HOSTILE, ["ou_hostile"])
    sent.ids["group"] = await bot.send(sent.group, ("text", json.dumps({"text": "hi"})), id_type="chat_id")
    return sent
