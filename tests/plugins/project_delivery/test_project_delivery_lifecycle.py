"""The lifecycle through the kit: stage changes (card, Bitable), reminders, the slip ladder, digests,
warranty, closing and cancelling, and the regional portfolio digest."""

from __future__ import annotations

from datetime import time
from typing import Any

import pd_helpers as h

import plugins.project_delivery as project_delivery
from engine.testing import moments
from plugins.project_delivery.rules import project_id_for

PLUGINS = {"project_delivery": project_delivery}
# Calendar days (no workday shifting) keep the expected moments obvious in these tests.
CALENDAR_DAYS = {"project_delivery": {"working_days_only": False}}


async def _create(env: Any, text: str = "建群 协和医院 CT128 华北", event_id: str = "ev-1") -> tuple[str, str]:
    await env.deliver(h.mention(text, event_id))
    pid = project_id_for(f"om_{event_id}")
    project = await h.state(env, pid)
    assert project.status == "open", project.reason
    return pid, project.chat_id


async def _to_the_night(env: Any) -> None:
    """Begin at the next 03:00: a test that counts notices sent at 09:00 after whole days starts at a fixed hour."""
    await env.begin_at(moments.next_time(time(3, 0)))


def _texts(env: Any, **filters: Any) -> list[str]:
    return [m.text for m in env.messages(**filters)]


async def test_stage_changes_from_card_and_bitable_are_announced_and_recorded(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, org_settings=CALENDAR_DAYS) as env:
        h.seed(env)
        pid, chat_id = await _create(env)
        result = await env.deliver(h.press({"op": "stage", "project": pid, "stage": "site_survey"}, "ev-s1",
                                           h.NORTH["se"]))
        assert result.toast == "已更新为：现场勘察"
        again = await env.deliver(h.press({"op": "stage", "project": pid, "stage": "site_survey"}, "ev-s2",
                                          h.NORTH["se"]))
        assert again.toast == "项目已处于该阶段"
        await env.advance(seconds=1)
        project = await h.state(env, pid)
        assert project.stage == "site_survey"
        assert (project.history[-1].by, project.history[-1].via) == (h.NORTH["se"], "card")
        assert any("合同签订 → 现场勘察" in t for t in _texts(env, chat_id=chat_id))
        [row] = h.projects(env)
        assert row["阶段"] == "现场勘察" and row["下一里程碑"] == "场地准备"
        assert "现场勘察" in row["阶段记录"]

        # someone edits the row's stage in Bitable: the project re-reads it and follows
        record_id = project.record_id
        env.standin.state.table("bascnDelivery", "tblProjects")["records"][record_id]["fields"]["阶段"] = "场地准备"
        await env.deliver(h.row_edited(record_id, "ev-b1", h.NORTH["pm"]))
        await env.advance(seconds=2)
        project = await h.state(env, pid)
        assert project.stage == "site_readiness"
        assert (project.history[-1].by, project.history[-1].via) == (h.NORTH["pm"], "bitable")
        assert any("现场勘察 → 场地准备" in t for t in _texts(env, chat_id=chat_id))
        # its own write coming back as an edit changes nothing
        await env.deliver(h.row_edited(record_id, "ev-b2", h.NORTH["pm"]))
        await env.advance(seconds=2)
        assert len((await h.state(env, pid)).history) == 3
        # an unknown stage from a forged button is refused with a toast
        bad = await env.deliver(h.press({"op": "stage", "project": pid, "stage": "nope"}, "ev-s3", h.NORTH["se"]))
        assert bad.toast == "没有这个阶段"


async def test_reminders_before_a_milestone_then_the_slip_ladder_and_weekly_digests(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, org_settings=CALENDAR_DAYS) as env:
        h.seed(env)
        await _to_the_night(env)  # created at 03:00: 14.5 days later is 15:00 on the planned day
        pid, chat_id = await _create(env)
        # site survey is planned 14 days after signing: reminders 3 and 1 days before and on the day
        await env.advance(days=14, hours=12)
        to_se = [t for t in _texts(env, to=h.NORTH["se"]) if "里程碑提醒" in t]
        assert len(to_se) == 3 and all("现场勘察" in t for t in to_se)
        assert not [t for t in _texts(env, to=h.NORTH["pm"]) if "延期" in t]
        # then the project manager (twice, daily), then the regional manager
        await env.advance(days=7)
        to_pm = [t for t in _texts(env, to=h.NORTH["pm"]) if "里程碑延期" in t]
        to_rm = [t for t in _texts(env, to=h.NORTH["rm"]) if "里程碑延期" in t]
        assert len(to_pm) == 2 and len(to_rm) >= 1
        assert "项目经理已收到提醒" in to_rm[0]
        project = await h.state(env, pid)
        assert {"after:project_manager:1", "after:project_manager:2", "after:regional_manager:1"} <= set(project.fired)
        [row] = h.projects(env)
        assert row["延期天数"] >= 4
        digests = [t for t in _texts(env, chat_id=chat_id) if "每周项目进展" in t]
        assert len(digests) >= 2  # Monday mornings within 20 days
        assert "现场勘察：已延期" in digests[-1]


async def test_acceptance_warranty_reminder_and_close_at_warranty_end(scenario_harness: Any) -> None:
    settings = {"project_delivery": {"working_days_only": False, "warranty_months": 1,
                                     "warranty_reminder_days": [7]}}
    async with scenario_harness(PLUGINS, org_settings=settings) as env:
        h.seed(env)
        pid, chat_id = await _create(env)
        for i, stage in enumerate(["site_survey", "site_readiness", "shipped", "installed", "acceptance_testing",
                                   "training", "warranty"]):
            await env.deliver(h.press({"op": "stage", "project": pid, "stage": stage}, f"ev-{i}", h.NORTH["pm"]))
            await env.advance(seconds=1)
        project = await h.state(env, pid)
        assert project.stage == "warranty" and project.accepted_on is not None
        assert project.warranty_end is not None and (project.warranty_end - project.accepted_on).days >= 28
        [row] = h.projects(env)
        assert row["保修截止"]
        await env.advance(days=(project.warranty_end - project.accepted_on).days + 1)
        assert any("保修提醒" in t for t in _texts(env, to=h.NORTH["se"]))
        result = await env.handle("project_delivery", pid).result()
        assert result["status"] == "closed" and result["reason"] == "warranty_ended"
        assert any("项目结项" in t and "保修期已结束" in t for t in _texts(env, chat_id=chat_id))
        assert h.chat(env, chat_id)["name"].startswith("【已结项】")
        [row] = h.projects(env)
        assert row["状态"] == "已结项" and row["阶段"] == "项目结项"
        assert (await h.state(env, "registry")).open == {}


async def test_cancel_renames_the_group_and_frees_the_customer_product(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, org_settings=CALENDAR_DAYS) as env:
        h.seed(env)
        pid, chat_id = await _create(env)
        result = await env.deliver(h.press({"op": "cancel", "project": pid}, "ev-c", h.NORTH["pm"]))
        assert result.toast == "正在取消项目"
        await env.advance(seconds=1)
        final = await env.handle("project_delivery", pid).result()
        assert final["status"] == "cancelled"
        assert h.chat(env, chat_id)["name"].startswith("【已取消】")
        assert any("项目已取消" in t for t in _texts(env, chat_id=chat_id))
        assert h.projects(env)[0]["状态"] == "已取消"
        late = await env.deliver(h.press({"op": "stage", "project": pid, "stage": "site_survey"}, "ev-x",
                                         h.NORTH["pm"]))
        assert late.toast  # the project is gone: the press is answered, nothing happens
        # the same customer and product may start again
        pid2, _ = await _create(env, event_id="ev-2")
        assert pid2 != pid


async def test_portfolio_digest_per_region_lists_late_projects(scenario_harness: Any) -> None:
    async with scenario_harness(PLUGINS, org_settings=CALENDAR_DAYS) as env:
        h.seed(env)
        north, _ = await _create(env, "建群 协和医院 CT128 华北", "ev-n")
        east, _ = await _create(env, "建群 瑞金医院 DR 华东", "ev-e")
        await env.advance(days=16)
        await env.deliver(h.press({"op": "stage", "project": east, "stage": "site_survey"}, "ev-es", "ou_pm_east"))
        await env.advance(seconds=1)
        handle = await env.start_workflow("project_delivery.PortfolioDigest", {"org": "acme"},
                                          id=env.workflow_id("project_delivery", "schedule:portfolio_digest:t1"))
        outcome = await handle.result()
        assert set(outcome["sent"]) == {"华北", "华东"}
        [north_text] = [t for t in _texts(env, to=h.NORTH["rm"]) if "区域项目周报" in t]
        assert "延期项目 1 个" in north_text and north in north_text
        [east_text] = [t for t in _texts(env, to="ou_rm_east") if "区域项目周报" in t]
        assert "无延期项目" in east_text and "现场勘察：1" in east_text


async def test_cancel_with_dissolve_removes_the_group(scenario_harness: Any) -> None:
    settings = {"project_delivery": {"working_days_only": False, "close_action": "dissolve"}}
    async with scenario_harness(PLUGINS, org_settings=settings) as env:
        h.seed(env)
        pid, chat_id = await _create(env)
        assert chat_id in env.standin.state.chats
        await env.deliver(h.press({"op": "cancel", "project": pid}, "ev-d", h.NORTH["pm"]))
        await env.advance(seconds=1)
        assert (await env.handle("project_delivery", pid).result())["status"] == "cancelled"
        assert chat_id not in env.standin.state.chats
        deletes = [c for c in env.standin.calls if c.method == "DELETE" and chat_id in c.path]
        assert len(deletes) == 1
