"""recruiting end to end on time-skipping Temporal with the Feishu stand-in: a two-level approval and a
pool match across hospitals, a candidate through every stage with SLAs on working days, onboarding
matched by a contact event, a probation warning, duplicates, rejection into the pool, the monthly report."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from recruiting_helpers import (
    APP,
    add_row,
    advance_to_local,
    config,
    edit_row,
    local_now,
    next_weekday,
    press,
    record_event,
    rows,
    seed,
    state,
    track,
)

import plugins.recruiting as recruiting
from engine.events import FeishuEvent, UserCreated
from engine.sdk import cells
from engine.testing import moments
from plugins.recruiting import rules

PLUGINS = {"recruiting": recruiting}


def harness(scenario_harness: Any, **settings: Any) -> Any:
    return scenario_harness(PLUGINS, config=config(**settings))


def calendar() -> Any:
    return rules.calendar_for("Asia/Shanghai")


async def test_two_level_approval_then_pool_match_from_the_other_hospital(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        seed(env, applications=False)
        # a candidate rejected at hospital B earlier stays in the group's pool
        add_row(env, "tblTalentPool", "recPool1", {
            "候选人ID": "c_pool_wangmin", "姓名": "王敏", "来源医院": "hosp_b", "科室": "心内科", "职位": "护士",
            "标签": "ICU", "最后阶段": "interview", "保留至": "2099-01-01"})
        add_row(env, "tblTalentPool", "recPool2", {
            "候选人ID": "c_pool_expired", "姓名": "过期", "来源医院": "hosp_b", "科室": "心内科", "职位": "护士",
            "保留至": "2000-01-01"})
        add_row(env, "tblRequisitions", "recReqNew", {
            "医院": "hosp_a", "科室": "心内科", "职位": "护士", "人数": 3, "标签": "ICU",
            "招聘负责人": [{"id": "ou_rc_a"}]})
        await env.deliver(record_event("tblRequisitions", "recReqNew"))

        st = await state(env, "req:recReqNew")
        assert st.status == "pending_approval"
        assert [s.role for s in st.chain] == ["hospital_head", "group_hr"]
        assert "headcount 3 >= 3" in st.chain_reason
        assert env.messages(to="ou_head_a")[-1].card is not None and not env.messages(to="ou_group_hr")

        # only the approver of the current level may decide
        refused = await env.deliver(press("ou_group_hr", "approve", req="recReqNew"))
        assert refused.toast and "院长" in refused.toast  # the hospital head's turn, in the site's language
        await env.deliver(press("ou_head_a", "approve", req="recReqNew"))
        assert "审批" in env.messages(to="ou_group_hr")[-1].text
        assert env.messages(to="ou_head_a")[-1].updated  # the card now shows the decision
        await env.deliver(press("ou_group_hr", "approve", req="recReqNew"))

        st = await state(env, "req:recReqNew")
        assert st.status == "open"
        assert [(s.status, s.decided_by) for s in st.chain] == [("approved", "ou_head_a"),
                                                                  ("approved", "ou_group_hr")]
        row = rows(env, "tblRequisitions")["recReqNew"]
        assert row["状态"] == "open" and row["职位编号"] == "recReqNew" and row["批准时间"]
        assert "group_hr: approved ou_group_hr" in row["审批记录"]
        # the pool match: the other hospital's candidate, not the expired one, offered by card
        assert [m.candidate_id for m in st.matches] == ["c_pool_wangmin"]
        pool_card = env.messages(to="ou_rc_a")[-1]
        assert pool_card.card is not None and "王敏" in pool_card.text and "B院" in pool_card.text

        # the recruiter invites her: an application linked to the pool entry
        await env.deliver(press("ou_rc_a", "invite", req="recReqNew", candidate="c_pool_wangmin"))
        app = await state(env, "app:pool_c_pool_wangmin_recReqNew")
        assert app.from_pool and app.candidate_id == "c_pool_wangmin" and app.name == "王敏"
        assert app.site == "hosp_a" and app.stage == "applied"
        written = [r for r in rows(env, "tblApplications").values()
                   if r.get("投递编号") == "pool_c_pool_wangmin_recReqNew"]
        assert written and written[0]["人才库复用"] is True


async def test_candidate_through_every_stage_with_slas_onboarding_and_probation(scenario_harness: Any) -> None:
    cal = calendar()
    async with harness(scenario_harness, risk={"probation_months": 1, "probation_lead_days": [7]}) as env:
        seed(env)
        # start on a Friday morning (a workday before a day off), so the SLA spans a weekend
        friday = next_weekday((await local_now(env)).date(), 4, cal)
        await advance_to_local(env, friday, time(10, 0))
        await env.deliver(record_event("tblApplications", "recAppA01"))
        st = await state(env, "app:recAppA01")
        assert st.stage == "applied" and st.candidate_id.startswith("c_")
        due_day = cal.add_workdays(friday, 2)
        assert st.sla_due == datetime.combine(due_day, time(18, 0), tzinfo=rules.calendar_for(
            "Asia/Shanghai").zone).astimezone(UTC)

        # nothing over the days off; the nudge to the recruiter on the last working day at 09:00
        await advance_to_local(env, due_day, time(8, 59))
        assert not env.messages(to="ou_rc_a")
        await advance_to_local(env, due_day, time(9, 1))
        nudges = env.messages(to="ou_rc_a")
        assert len(nudges) == 1 and nudges[0].card is not None and "时限" in nudges[0].text
        assert cal.is_workday(due_day) and (due_day - friday).days >= 3  # the days off were not counted
        # after it lapsed: the manager, on the next working day, not before
        escalate_day = cal.add_workdays(due_day, 1)
        await advance_to_local(env, escalate_day, time(8, 59))
        assert not env.messages(to="ou_rc_mgr")
        await advance_to_local(env, escalate_day, time(9, 1))
        assert len(env.messages(to="ou_rc_mgr")) == 1 and "超时" in env.messages(to="ou_rc_mgr")[0].text

        # through the stages by card, each move recorded with who and how
        for stage, who in (("screened", "ou_rc_a"), ("interview", "ou_rc_a"), ("offer", "ou_interviewer_a")):
            result = await env.deliver(press(who, "move", app="recAppA01", to=stage))
            assert result.toast and "李雷" in result.toast
        backwards = await env.deliver(press("ou_rc_a", "move", app="recAppA01", to="applied"))
        assert backwards.toast and "不能退回" in backwards.toast  # cannot go back, in the site's language
        # the offer is accepted in Bitable (with a start date): the row edit drives the move
        start = cal.add_workdays((await local_now(env)).date(), 5)
        edit_row(env, "tblApplications", "recAppA01", 阶段="已接受", 预计入职日期=start.isoformat())
        await env.deliver(record_event("tblApplications", "recAppA01", action="record_edited", operator="ou_hr_a"))
        track(env, "onb:recAppA01")
        await env.settle()
        st = await state(env, "app:recAppA01")
        assert st.stage == "accepted"
        moves = [(t.action, t.actor, t.via) for t in st.history if t.action.startswith("moved:")]
        assert moves == [("moved:screened", "ou_rc_a", "card"), ("moved:interview", "ou_rc_a", "card"),
                         ("moved:offer", "ou_interviewer_a", "card"), ("moved:accepted", "ou_hr_a", "bitable")]
        row = rows(env, "tblApplications")["recAppA01"]
        assert row["阶段"] == "已接受" and row["接受时间"] and row["Offer时间"] and "moved:offer" in row["流转记录"]
        assert "手机" in row and row["联系方式哈希"] and "13800000001" not in row["联系方式哈希"]

        onboarding = await state(env, "onb:recAppA01")
        assert onboarding.status == "onboarding" and onboarding.start_date == start
        assert [i.id for i in onboarding.checklist] == ["account", "badge", "contract", "training"]
        assert onboarding.checklist[0].due == cal.add_workdays(start, -1)
        assert "入职清单" in env.messages(to="ou_hr_a")[-1].text

        # the new hire's Feishu account appears (mobile written differently): matched automatically
        told_before = len(env.messages(to="ou_hr_a"))
        await env.deliver(UserCreated(event_id="ev-user-1", event_type="contact.user.created_v3",
                                      create_time=datetime.now(UTC), open_id="ou_lilei", name="李雷",
                                      mobile="+86 13800000001"))
        track(env, "account:ou_lilei")
        await env.settle()
        onboarding = await state(env, "onb:recAppA01")
        assert onboarding.open_id == "ou_lilei" and onboarding.checklist[0].done_at is not None
        # the match's notice and the checklist's update come from two workflows, in either order
        assert any("飞书账号已开通" in m.text for m in env.messages(to="ou_hr_a")[told_before:])
        st = await state(env, "app:recAppA01")
        assert st.stage == "onboarded" and st.history[-1].via == "contact"
        person = next(r for r in rows(env, "tblOnboarding").values() if r["投递编号"] == "recAppA01")
        assert person["飞书账号"] == "ou_lilei" and person["状态"] == "onboarding"

        for item in ("badge", "contract", "training"):
            await env.deliver(press("ou_hr_a", "item_done", app="recAppA01", item=item))
        assert (await state(env, "onb:recAppA01")).status == "employed"

        # probation of one month ends; HR hears 7 days ahead (on a workday)
        end = rules.probation_end(start, 1)
        assert end is not None
        warn_day = cal.previous_workday(end - timedelta(days=7))
        await advance_to_local(env, warn_day, time(8, 59))
        assert not any("试用期" in m.text for m in env.messages(to="ou_hr_a"))
        await advance_to_local(env, warn_day, time(9, 1))
        assert "试用期将于" in env.messages(to="ou_hr_a")[-1].text

        # leaving starts the offboarding checklist
        await env.deliver(press("ou_hr_a", "leave", app="recAppA01"))
        onboarding = await state(env, "onb:recAppA01")
        assert onboarding.status == "offboarding" and len(onboarding.offboarding) == 4
        assert "离职清单" in env.messages(to="ou_hr_a")[-1].text


async def test_duplicate_across_hospitals_and_rejection_keeps_the_candidate_in_the_pool(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))
        first = await state(env, "app:recAppA01")
        second = await state(env, "app:recAppB03")
        assert second.candidate_id == first.candidate_id
        assert [link.application_id for link in second.linked] == ["recAppA01"]
        assert "同一人" in env.messages(to="ou_rc_b")[-1].text
        assert rows(env, "tblApplications")["recAppB03"]["关联投递"] == "recAppA01"

        # a different person is not linked
        await env.deliver(record_event("tblApplications", "recAppA02"))
        other = await state(env, "app:recAppA02")
        assert other.candidate_id != first.candidate_id and not other.linked

        # rejected at hospital B (consent given): into the group's pool with a retention date
        await env.deliver(press("ou_rc_b", "move", app="recAppB03", to="rejected"))
        assert (await state(env, "app:recAppB03")).done
        pool = list(rows(env, "tblTalentPool").values())
        assert len(pool) == 1 and pool[0]["候选人ID"] == first.candidate_id and pool[0]["保留至"]
        assert pool[0]["联系方式哈希"] and "手机" not in pool[0]
        assert rows(env, "tblApplications")["recAppB03"]["结束前阶段"] == "已投递"


async def test_rows_hashed_before_the_keyed_hashes_still_match_by_their_contact(scenario_harness: Any) -> None:
    """An upgraded deployment: the earlier row holds a hash of the old salted scheme, and its phone."""
    import hashlib

    async with harness(scenario_harness) as env:
        seed(env)
        await env.deliver(record_event("tblApplications", "recAppA01"))
        first = await state(env, "app:recAppA01")
        stored = env.standin.state.table(APP, "tblApplications")["records"]["recAppA01"]["fields"]
        phone = rules.normalize_phone(cells.text(stored["手机"]))
        assert phone and stored["联系方式哈希"] and phone not in stored["联系方式哈希"]
        stored["联系方式哈希"] = hashlib.sha256(f"old-salt\x1fphone\x1f{phone}".encode()).hexdigest()
        await env.deliver(record_event("tblApplications", "recAppB03", operator="ou_rc_b"))
        second = await state(env, "app:recAppB03")
        assert second.candidate_id == first.candidate_id
        assert [link.application_id for link in second.linked] == ["recAppA01"]


async def test_hire_events_move_an_application(scenario_harness: Any) -> None:
    async with harness(scenario_harness, hire={"stage_map": {"7001": "interview"}}) as env:
        seed(env, applications=False)
        event = FeishuEvent(event_id="ev-hire-1", event_type="hire.application.stage_changed_v1",
                            create_time=datetime.now(UTC),
                            raw={"event": {"application_id": "6001", "target_stage_id": "7001"}})
        await env.deliver(event)
        st = await state(env, "app:hire_6001")
        assert st.stage == "interview"
        offer = FeishuEvent(event_id="ev-hire-2", event_type="hire.offer.status_changed_v1",
                            create_time=datetime.now(UTC), raw={"event": {"application_id": "6001",
                                                                           "offer_status": "declined"}})
        await env.deliver(offer)
        st = await state(env, "app:hire_6001")
        assert st.stage == "withdrawn"
        moves = [(t.action, t.via) for t in st.history if t.action.startswith("moved:")]
        assert moves == [("moved:interview", "hire"), ("moved:withdrawn", "hire")]


async def test_monthly_report_figures_from_the_recorded_rows(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        seed(env, applications=False)
        today = (await env.begin_at(moments.ordinary_workday(time(10, 0)))).date()
        month = rules.previous_month(today)
        start, _ = rules.month_bounds(month, calendar())
        in_month = rules.ms(start + timedelta(days=3))
        later = rules.ms(start + timedelta(days=13))
        for rid, fields in {
            "r1": {"医院": "hosp_a", "投递时间": in_month, "接受时间": later, "阶段": "已接受", "人才库复用": True},
            "r2": {"医院": "hosp_a", "投递时间": in_month, "结束时间": later, "结束前阶段": "Offer", "阶段": "已撤回"},
            "r3": {"医院": "hosp_b", "投递时间": in_month, "阶段": "已投递", "SLA截止": in_month},
        }.items():
            add_row(env, "tblApplications", rid, fields)
        add_row(env, "tblRequisitions", "q1", {"医院": "hosp_a", "人数": 3, "批准时间": in_month})
        add_row(env, "tblOnboarding", "o1", {"医院": "hosp_b", "入职日期": in_month, "状态": "employed",
                                             "逾期事项": 1})
        handle = await env.start_workflow("recruiting.MonthlyReport", {"org": env.org.id, "month": month},
                                          id=env.workflow_id("recruiting", f"report:{month}"))
        result = await handle.result()
        figures = {r["site"]: r for r in result["rows"]}
        assert figures["hosp_a"]["applications"] == 2 and figures["hosp_a"]["hires"] == 1
        assert figures["hosp_a"]["time_to_hire_days"] == 10.0 and figures["hosp_a"]["offer_acceptance_rate"] == 0.5
        assert figures["hosp_a"]["open_positions"] == 3 and figures["hosp_a"]["pool_reuse"] == 1
        assert figures["hosp_b"]["overdue_slas"] == 1 and figures["hosp_b"]["joined"] == 1
        assert figures["hosp_b"]["open_risks"] == 1
        assert figures["*"]["applications"] == 3 and figures["*"]["net_headcount"] == 1
        assert f"人力资源月报 {month}" in env.messages(to="ou_group_hr")[-1].text
        (funnel,) = [m.text for m in env.messages(to="ou_group_hr") if f"招聘月报 {month}" in m.text]
        assert "集团合计" in funnel and "hosp_" not in funnel and "&#42;" not in funnel  # names, not site ids
        summary = {r["报表键"]: r for r in rows(env, "tblHrReport").values()}
        assert summary[f"{month}:*"]["投递数"] == 3 and summary[f"{month}:hosp_a"]["Offer接受率"] == 0.5


async def test_the_daily_run_reports_last_month_on_the_first_working_day_only(scenario_harness: Any) -> None:
    async with harness(scenario_harness) as env:
        seed(env, applications=False)
        ordinary = await env.begin_at(moments.ordinary_workday(time(9, 30)))
        skip = await env.start_workflow("recruiting.MonthlyReport", {"org": env.org.id},
                                        id=env.workflow_id("recruiting", f"report:daily:{ordinary:%Y%m%d}"))
        outcome = await skip.result()
        assert "not the first working day" in outcome["skipped"]

        first = await env.begin_at(moments.first_workday_of_month(time(9, 30)))
        daily = await env.start_workflow("recruiting.MonthlyReport", {"org": env.org.id},
                                         id=env.workflow_id("recruiting", f"report:daily:{first:%Y%m%d}"))
        outcome = await daily.result()
        assert outcome["month"] == rules.previous_month(first.date())
        assert f"人力资源月报 {outcome['month']}" in env.messages(to="ou_group_hr")[-1].text


async def test_a_hire_event_pushed_through_the_ingress_moves_an_application(scenario_harness: Any) -> None:
    async with harness(scenario_harness, hire={"stage_map": {"7001": "interview"}}) as env:
        seed(env, applications=False)
        delivery = await env.push("hire.application.stage_changed_v1",
                                  {"application_id": "6002", "target_stage_id": "7001"})
        assert delivery.acknowledged
        assert (await state(env, "app:hire_6002")).stage == "interview"
        forged = await env.push("hire.application.stage_changed_v1",
                                {"application_id": "6003", "target_stage_id": "7001"}, tamper="wrong_token")
        assert not forged.acknowledged and forged.attempts[-1].status == 401
        assert not env.router.touched or all("6003" not in wid for wid in env.router.touched)
