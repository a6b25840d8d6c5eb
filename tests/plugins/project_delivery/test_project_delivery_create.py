"""Creating a project from a mention: the name rule, members, the card, the row, duplicates, retries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pd_helpers as h

import plugins.project_delivery as project_delivery
from engine.testing import moments
from plugins.project_delivery.rules import project_id_for

PLUGINS = {"project_delivery": project_delivery}


async def test_mention_creates_named_group_with_staff_card_and_row(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS) as env:
        h.seed(env)
        await env.deliver(h.mention("建群 北京协和医院 CT/NeuViz 128 华北", "ev-1", mentions=["ou_extra"]))
        pid = project_id_for("om_ev-1")
        state = await h.state(env, pid)
        assert state.status == "open"
        # the name's month is the month the project was created in, in the organization's zone
        month = state.created_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m")
        [group] = h.created_chats(env)
        # forbidden "/" removed, parts in the rule's order, within the length limit
        assert group["name"] == f"【交付】华北-北京协和医院-CTNeuViz 128-{month}"
        assert len(group["name"]) <= 60
        assert set(group["_members"]) >= {h.NORTH["pm"], h.NORTH["sales"], h.NORTH["se"], "ou_extra"}
        assert h.NORTH["rm"] not in group["_members"]
        card = [m for m in env.messages(chat_id=group["chat_id"]) if m.card]
        assert card and "北京协和医院" in card[0].text
        assert any(p["message_id"] == card[0].message_id for p in env.standin.state.pins)
        [row] = h.projects(env)
        assert row["项目编号"] == pid and row["阶段"] == "合同签订" and row["状态"] == "进行中"
        assert row["群ID"] == group["chat_id"] and row["项目经理"] == h.NORTH["pm"]
        await env.settle()  # the reply is the project's last step, after the row
        assert any("已创建项目群" in text for text in h.replies(env))


async def test_a_request_in_the_last_second_of_a_month_names_the_month_it_was_created_in(scenario_harness: Any
                                                                                          ) -> None:
    async with scenario_harness(PLUGINS) as env:
        h.seed(env)
        last = await env.begin_at(moments.last_minute_of_month())
        await env.advance_to(last + timedelta(seconds=59.9))  # the creation's calls run into the next month
        await env.deliver(h.mention("建群 协和医院 CT128 华北", "ev-1"))
        state = await h.state(env, project_id_for("om_ev-1"))
        created = state.created_at.astimezone(ZoneInfo("Asia/Shanghai"))
        [group] = h.created_chats(env)
        assert group["name"].endswith(f"-{created:%Y%m}") and state.start_date == created.date()


async def test_retried_event_and_duplicate_request(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS) as env:
        h.seed(env)
        await env.deliver(h.mention("建群 协和 CT128 华北", "ev-1"))
        await env.deliver(h.mention("建群 协和 CT128 华北", "ev-1"))  # Feishu delivers it again
        assert len(h.created_chats(env)) == 1
        # another message for the same customer and product while the first project is open
        await env.deliver(h.mention("建群 协和 ct128 华东", "ev-2"))
        assert len(h.created_chats(env)) == 1
        refused = await h.state(env, project_id_for("om_ev-2"))
        assert refused.status == "refused"
        assert any("已有进行中的交付项目" in text for text in h.replies(env))
        registry = await h.state(env, "registry")
        assert list(registry.open) == [project_id_for("om_ev-1")]


async def test_malformed_requests_name_each_missing_part(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS) as env:
        await env.deliver(h.mention("建群 协和", "ev-a"))
        await env.deliver(h.mention("create project", "ev-b"))
        await env.deliver(h.mention("建群 协和 CT128", "ev-c"))
        texts = h.replies(env)
        assert texts[0].startswith("缺少：产品名称、区域")
        form = [m for m in env.messages() if m.reply_to and m.card]
        assert form and "新建交付项目群" in form[0].text  # nothing after the trigger: the form card
        assert texts[-1].startswith("缺少：区域")
        assert h.created_chats(env) == []


async def test_card_form_creates_a_project(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS) as env:
        h.seed(env)
        await env.deliver(h.press({"op": "create"}, "ev-form", h.NORTH["sales"],
                                  form={"customer": "天坛医院", "product": "MR 1.5T", "region": "华北"},
                                  message_id="om_formcard"))
        [group] = h.created_chats(env)
        assert "天坛医院" in group["name"] and "MR 1.5T" in group["name"]
