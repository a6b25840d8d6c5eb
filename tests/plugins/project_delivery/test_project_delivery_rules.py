"""Pure rules of project_delivery: parsing, naming, staffing, stages, timers, rows, the portfolio; the
settings' validation; every template renders in both locales with its sample."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.rules import WorkCalendar
from engine.templates import TemplateEngine
from plugins.project_delivery import rules
from plugins.project_delivery.config import NamingRule, ProjectDeliverySettings
from plugins.project_delivery.models import ProjectState, StageChange, StageEvent

S = ProjectDeliverySettings()
CAL = WorkCalendar("Asia/Shanghai")
TEMPLATES = Path(__file__).resolve().parents[3] / "plugins" / "project_delivery" / "templates"


def test_trigger_words_in_both_languages() -> None:
    assert rules.match_trigger("建群 协和 CT", S.trigger_words) == "协和 CT"
    assert rules.match_trigger("建群协和 CT", S.trigger_words) == "协和 CT"  # CJK needs no space
    assert rules.match_trigger("Create Project  Union  CT", S.trigger_words) == "Union CT"
    assert rules.match_trigger("create projects x", S.trigger_words) is None
    assert rules.match_trigger("你好", S.trigger_words) is None


def test_parser_returns_a_request_or_exactly_what_is_missing() -> None:
    ok = rules.parse_request("协和医院 CT NeuViz 128 华北", S)
    assert ok.request is not None
    assert (ok.request.customer, ok.request.product, ok.request.region) == ("协和医院", "CT NeuViz 128", "华北")
    assert rules.parse_request("协和医院，CT128，华北", S).request is not None
    assert rules.parse_request("协和医院", S).missing == ["product", "region"]
    assert rules.parse_request("协和医院 CT128", S).missing == ["region"]
    empty = rules.parse_request("", S)
    assert empty.empty and empty.missing == ["customer", "product", "region"]
    # a rule without {region}, or a default region, makes the region optional
    with_default = S.model_copy(update={"default_region": "华东"})
    assert rules.parse_request("协和医院 CT128", with_default).request.region == "华东"  # type: ignore[union-attr]
    # a part made only of forbidden characters is missing
    assert rules.request_from_parts("///", "CT", "华北", S).missing == ["customer"]


def test_project_id_is_stable_per_message() -> None:
    assert rules.project_id_for("om_1") == rules.project_id_for("om_1") != rules.project_id_for("om_2")
    assert rules.project_id_for("om_1").startswith("PD-")


def test_group_name_follows_the_rule_within_the_limit() -> None:
    d = rules.build_group_name(S.naming, customer="协和:医院", product="CT*128", region="华北", today=date(2026, 3, 2))
    assert d.action == "name" and d.data["name"] == "【交付】华北-协和医院-CT128-202603"
    long = rules.build_group_name(S.naming, customer="北" * 50, product="CT" * 20, region="华北",
                                  today=date(2026, 3, 2))
    assert len(long.data["name"]) <= 60 and "shortened" in long.reason
    missing = rules.build_group_name(S.naming, customer="协和", product="", region="华北", today=date(2026, 3, 2))
    assert missing.action == "invalid" and missing.data["missing"] == ["product"]


def test_unique_names_duplicates_and_closed_names() -> None:
    assert rules.unique_name("A", ["B"], 60) == "A"
    assert rules.unique_name("A", ["A", "A-2"], 60) == "A-3"
    assert len(rules.unique_name("x" * 60, ["x" * 60], 60)) == 60
    assert rules.same_project_key("协和 医院", "CT128") == rules.same_project_key("协和医院", "ct128")
    assert rules.closed_name("名", S.naming, cancelled=False) == "【已结项】名"
    assert rules.closed_name("【已取消】名", S.naming, cancelled=True) == "【已取消】名"
    assert len(rules.closed_name("x" * 60, S.naming, cancelled=False)) == 60


def test_naming_rule_validation() -> None:
    with pytest.raises(ValidationError, match="must contain"):
        NamingRule(template="{region}-{customer}")
    with pytest.raises(ValidationError, match="unknown placeholders"):
        NamingRule(template="{customer}-{product}-{city}")
    with pytest.raises(ValidationError):
        NamingRule(max_length=80)


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ProjectDeliverySettings(stages=[S.stages[0], S.stages[0]])
    with pytest.raises(ValidationError, match="not one of the stages"):
        ProjectDeliverySettings(warranty_stage="guarantee")
    with pytest.raises(ValidationError):
        ProjectDeliverySettings(digest_cron="every monday")
    with pytest.raises(ValidationError):
        ProjectDeliverySettings(unknown_key=1)  # type: ignore[call-arg]


def test_staffing_cells_in_every_shape() -> None:
    rows = [{"区域": "华北", "项目经理": "ou_a, ou_b", "销售": [{"id": "ou_s", "name": "S"}],
             "服务工程师": ["ou_e"], "区域经理": [{"text": "ou_r"}]},
            {"区域": [{"text": "华东"}], "项目经理": "ou_x"}]
    staff = rules.staff_for_region(rows, "华北", S.staffing)
    assert staff == {"project_manager": ["ou_a", "ou_b"], "sales": ["ou_s"], "service_engineer": ["ou_e"],
                     "regional_manager": ["ou_r"]}
    assert rules.staff_for_region(rows, "华东", S.staffing)["project_manager"] == ["ou_x"]
    members = rules.members_for(staff, S.staffing, ["ou_s", "ou_req"], ["ou_m"])
    assert members == ["ou_a", "ou_b", "ou_s", "ou_e", "ou_req", "ou_m"]  # no regional manager, no repeats


def _state(start: date = date(2026, 3, 2)) -> ProjectState:
    created = datetime(2026, 3, 2, 2, tzinfo=UTC)
    return ProjectState(project_id="PD-1", status="open", name="n", stage="contract_signed", start_date=start,
                        created_at=created, planned=rules.plan(start, S), staff={"project_manager": ["ou_pm"]},
                        history=[StageEvent(stage="contract_signed", at=created, via="create", planned=start)])


def test_stage_changes_are_checked() -> None:
    state = _state()
    assert rules.check_stage_change(state, StageChange(stage="site_survey"), S).action == "accept"
    skip = rules.check_stage_change(state, StageChange(stage="shipped"), S)
    assert skip.data["skipped"] == ["site_survey", "site_readiness"]
    assert rules.check_stage_change(state, StageChange(stage="contract_signed"), S).data["code"] == "already"
    assert rules.check_stage_change(state, StageChange(stage="x"), S).data["code"] == "unknown"
    assert rules.check_stage_change(state, StageChange(stage="closed"), S).action == "close"
    closed = state.model_copy(update={"status": "closed"})
    assert rules.check_stage_change(closed, StageChange(stage="site_survey"), S).data["code"] == "not_open"


def test_acceptance_starts_the_warranty_and_slips_are_recorded() -> None:
    state = _state()
    now = datetime(2026, 6, 10, 2, tzinfo=UTC)
    late = rules.apply_stage(state, StageChange(stage="site_survey", operator_open_id="ou_e"), now,
                             date(2026, 3, 20), S)
    assert late.history[-1].slipped_days == 4 and late.cycle == 1
    moved = rules.apply_stage(late, StageChange(stage="training"), now, date(2026, 6, 10), S)
    assert moved.accepted_on == date(2026, 6, 10)
    warranty = rules.apply_stage(moved, StageChange(stage="warranty"), now, date(2026, 6, 12), S)
    assert warranty.warranty_end == date(2027, 6, 10) and warranty.planned["closed"] == date(2027, 6, 10)
    back = rules.apply_stage(moved, StageChange(stage="installed"), now, date(2026, 6, 12), S)
    assert back.accepted_on is None


def test_next_timer_reminds_then_escalates_on_the_ladder() -> None:
    # the digest only on New Year's Day, so the ladder is what comes next
    settings = S.model_copy(update={"working_days_only": False, "digest_cron": "0 9 1 1 *"})
    state = _state()
    first = rules.next_timer(state, datetime(2026, 3, 2, 3, tzinfo=UTC), settings, CAL)
    assert first.action == "remind" and first.step == "before:3" and first.data["role"] == "service_engineer"
    assert first.at == datetime(2026, 3, 13, 1, tzinfo=UTC)  # 09:00 local, 3 days before the 16th
    state.fired = ["before:3", "before:1", "due"]
    slip = rules.next_timer(state, datetime(2026, 3, 16, 2, tzinfo=UTC), settings, CAL)
    assert slip.action == "escalate" and slip.data["role"] == "project_manager"
    state.fired += ["after:project_manager:1", "after:project_manager:2"]
    rm = rules.next_timer(state, datetime(2026, 3, 18, 2, tzinfo=UTC), settings, CAL)
    assert rm.data["role"] == "regional_manager"


def test_next_timer_digest_and_warranty_end() -> None:
    state = _state()
    state.fired = ["before:3", "before:1", "due", "after:project_manager:1", "after:project_manager:2",
                   "after:regional_manager:1", "after:regional_manager:2", "after:regional_manager:3"]
    digest = rules.next_timer(state, datetime(2026, 3, 25, 2, tzinfo=UTC), S, CAL)
    assert digest.action == "digest" and digest.at == datetime(2026, 3, 25, 2, tzinfo=UTC)  # Monday 9th missed
    state.last_digest_at = datetime(2026, 3, 25, 2, tzinfo=UTC)
    assert rules.next_timer(state, state.last_digest_at, S, CAL).at == datetime(2026, 3, 30, 1, tzinfo=UTC)
    state.stage, state.warranty_end, state.last_digest_at = "warranty", date(2026, 4, 10), None
    state.created_at = datetime(2026, 4, 9, 2, tzinfo=UTC)
    end = rules.next_timer(state, datetime(2026, 4, 9, 2, tzinfo=UTC), S, CAL)
    assert end.action == "warranty_end"


def test_rows_and_the_portfolio() -> None:
    state = _state()
    zone = CAL.zone
    fields = rules.project_fields(state, S, date(2026, 3, 20), zone)
    assert fields["阶段"] == "合同签订" and fields["下一里程碑"] == "现场勘察" and fields["延期天数"] == 4
    assert rules.stage_from_fields({"阶段": [{"text": "Shipped"}]}, S) == "shipped"
    assert rules.stage_from_fields({"阶段": "whatever"}, S) is None
    row = rules.project_row({**fields, "区域": "华北"}, S, date(2026, 3, 20), zone)
    assert row.late_days == 4 and row.next_due == date(2026, 3, 16)
    other = row.model_copy(update={"project_id": "PD-2", "late_days": 0, "stage": "设备发货"})
    closed = row.model_copy(update={"project_id": "PD-3", "status": "已结项"})
    summary = rules.portfolio([row, other, closed], S)
    assert summary["华北"]["total"] == 2
    assert summary["华北"]["by_stage"] == [{"stage": "合同签订", "count": 1}, {"stage": "设备发货", "count": 1}]
    assert [p["project_id"] for p in summary["华北"]["late"]] == ["PD-1"]
    assert rules.slipped_items(state, date(2026, 3, 16) + timedelta(days=2), S)[0]["open"] is True


def test_every_template_renders_in_both_locales() -> None:
    engine = TemplateEngine({"project_delivery": TEMPLATES})
    assert engine.check_all() == []
    names = engine.names()
    assert "project_delivery:project.card" in names and len(names) == 15
