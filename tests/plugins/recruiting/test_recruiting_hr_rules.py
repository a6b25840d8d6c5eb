"""The HR monthly report's pure figures (plugins/recruiting/hr_rules.py): September 2026 of a two-hospital
group with joiners, a leaver, a transfer between hospitals, a filled requisition, a move through the talent
pool, trainings, operations figures and risk warnings, reported on 2026-10-08, the first working day after
the National Day holiday."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from plugins.recruiting import hr_rules, rules
from plugins.recruiting.config import RecruitingSettings

CAL = rules.calendar_for("Asia/Shanghai")
SETTINGS = RecruitingSettings()
NAMES = {"hosp_a": "A院", "hosp_b": "B院"}
AS_OF = CAL.at_local(date(2026, 10, 8), time(9, 0)).astimezone(UTC)


def day(y: int, m: int, d: int) -> int:
    return rules.day_ms(date(y, m, d), CAL)  # type: ignore[return-value]


def staff(user: str, name: str, site: str, department: str) -> hr_rules.Staff:
    return hr_rules.Staff(user_id=user, name=name, site=site, department=department)


AUGUST = [staff("u1", "张三", "hosp_a", "骨科"), staff("u2", "李四", "hosp_a", "骨科"),
          staff("u3", "王五", "hosp_a", "护理部"), staff("u4", "赵六", "hosp_a", "麻醉科"),
          staff("u5", "钱七", "hosp_b", "急诊科"), staff("u6", "孙八", "hosp_b", "急诊科")]
# 李四 left; 周九 joined A院, 吴十 B院; 赵六 moved from A院 to B院
SEPTEMBER = [staff("u1", "张三", "hosp_a", "骨科"), staff("u3", "王五", "hosp_a", "护理部"),
             staff("u7", "周九", "hosp_a", "骨科"), staff("u5", "钱七", "hosp_b", "急诊科"),
             staff("u6", "孙八", "hosp_b", "急诊科"), staff("u4", "赵六", "hosp_b", "麻醉科"),
             staff("u8", "吴十", "hosp_b", "护理部")]


def tables() -> dict[str, list[dict[str, Any]]]:
    f = SETTINGS.fields
    r, a, p, o = f.requisitions, f.applications, f.pool, f.onboarding
    d, op, c = f.development, f.operations, f.cases
    return {
        "requisitions": [
            {r.site: "hosp_a", r.headcount: 1, r.status: "filled", r.approved_at: day(2026, 9, 1),
             r.closed_at: day(2026, 9, 21)},
            {r.site: "A院", r.headcount: 2, r.status: "open", r.approved_at: day(2026, 8, 20)},
            {r.site: "hosp_b", r.headcount: 1, r.status: "filled", r.approved_at: day(2026, 9, 5),
             r.closed_at: day(2026, 10, 2)},  # closed after the month: still open at its end
        ],
        "pool": [
            {p.candidate_id: "cand_x", p.site: "hosp_b", p.added_at: day(2026, 3, 1), p.retain_until: day(2028, 3, 1)},
            {p.candidate_id: "cand_y", p.site: "hosp_a", p.added_at: day(2024, 9, 1),
             p.retain_until: day(2026, 9, 15)},  # expired in the month
        ],
        "applications": [
            {a.site: "hosp_a", a.candidate_id: "cand_x", a.from_pool: True, a.accepted_at: day(2026, 9, 10)},
            {a.site: "hosp_b", a.candidate_id: "cand_x", a.from_pool: True, a.accepted_at: day(2026, 9, 11)},
        ],
        "development": [
            {d.site: "hosp_a", d.kind: "培训", d.hours: 4, d.day: day(2026, 9, 3), d.name: "张三"},
            {d.site: "A院", d.kind: "培训", d.hours: 2.5, d.day: day(2026, 9, 20), d.name: "王五"},
            {d.site: "hosp_b", d.kind: "晋升", d.day: day(2026, 9, 30), d.name: "钱七"},
            {d.site: "hosp_a", d.kind: "培训", d.hours: 8, d.day: day(2026, 10, 2), d.name: "周九"},  # October
        ],
        "operations": [
            {op.month: "2026-09", op.site: "A院", "营业收入": 700000, "门诊人次": 1400},
            {op.month: "2026-09", op.site: "hosp_b", "营业收入": 900000, "门诊人次": 1500},
            {op.month: "2026-08", op.site: "hosp_a", "营业收入": 1, "门诊人次": 1},
        ],
        "onboarding": [
            {o.site: "hosp_a", o.name: "周九", o.department: "骨科", o.status: "employed",
             o.probation_end: day(2026, 10, 20)},
            {o.site: "hosp_b", o.name: "吴十", o.department: "护理部", o.status: "onboarding",
             o.contract_end: day(2026, 12, 1), o.overdue_items: 1},
            {o.site: "hosp_a", o.name: "李四", o.status: "left", o.probation_end: day(2026, 10, 10)},
        ],
        "cases": [
            {c.site: "B院", c.kind: "劳动纠纷", c.subject: "加班费争议", c.opened: day(2026, 9, 12)},
            {c.site: "hosp_a", c.kind: "合规", c.subject: "执业证过期", c.opened: day(2026, 8, 1),
             c.closed: day(2026, 9, 30)},
            {c.site: "hosp_a", c.kind: "合规", c.subject: "later", c.opened: day(2026, 10, 9)},
        ],
    }


def report() -> hr_rules.HrReport:
    return hr_rules.compute_hr_report("2026-09", AUGUST, SEPTEMBER, **tables(), as_of=AS_OF, settings=SETTINGS,
                                      calendar=CAL, site_names=NAMES)


def test_the_report_is_due_on_the_first_working_day_after_national_day() -> None:
    assert rules.report_due(CAL.at_local(date(2026, 10, 1), time(9)).astimezone(UTC), CAL).is_nothing
    due = rules.report_due(AS_OF, CAL)
    assert due.action == "report" and due.data["month"] == "2026-09"


def test_people_joiners_leavers_transfers_and_turnover() -> None:
    result = report()
    a, b = result.hospitals
    assert (a.name, b.name) == ("A院", "B院")
    assert (a.headcount_start, a.headcount_end, a.joiners, a.leavers, a.transfers_in, a.transfers_out) == \
        (4, 3, 1, 1, 0, 1)
    assert (b.headcount_start, b.headcount_end, b.joiners, b.leavers, b.transfers_in, b.transfers_out) == \
        (2, 4, 1, 0, 1, 0)
    assert a.average_headcount == 3.5 and a.turnover_rate == round(1 / 3.5, 4)  # leavers / average headcount
    assert b.turnover_rate == 0.0
    g = result.group
    assert (g.headcount_start, g.headcount_end, g.joiners, g.leavers) == (6, 7, 2, 1)
    assert g.transfers_in == g.transfers_out == 1 and g.turnover_rate == round(1 / 6.5, 4)
    by_dept = {d.department: d for d in a.departments}
    assert (by_dept["骨科"].headcount, by_dept["骨科"].joiners, by_dept["骨科"].leavers) == (2, 1, 1)
    assert by_dept["麻醉科"].headcount == 0 and by_dept["麻醉科"].transfers_out == 1
    assert {d.department: d.transfers_in for d in b.departments}["麻醉科"] == 1


def test_recruiting_pool_development_and_operations() -> None:
    a, b = report().hospitals
    assert (a.open_positions, a.filled, a.time_to_fill_days) == (2, 1, 20.0)
    assert (b.open_positions, b.filled, b.time_to_fill_days) == (1, 0, None)
    # cand_x came from B院's pool and was hired by A院: a move; B院 hiring its own is not
    assert (a.pool_size, b.pool_size) == (0, 1)
    assert (a.pool_moves_in, a.pool_moves_out, b.pool_moves_in, b.pool_moves_out) == (1, 0, 0, 1)
    assert (a.trainings, a.training_hours, a.promotions) == (2, 6.5, 0) and b.promotions == 1
    assert a.operations_per_head == {"revenue": 200000.0, "outpatient_visits": 400.0}
    assert b.operations_per_head == {"revenue": 300000.0, "outpatient_visits": 500.0}
    g = report().group
    assert g.operations_per_head == {"revenue": round(1600000 / 6.5, 2), "outpatient_visits": round(2900 / 6.5, 2)}


def test_risk_warnings_name_people_and_cases() -> None:
    a, b = report().hospitals
    assert [(r.kind, r.name, r.due) for r in a.risks] == [("probation", "周九", date(2026, 10, 20))]
    assert [(r.kind, r.name) for r in b.risks] == [("labour_dispute", "加班费争议"), ("overdue_onboarding", "吴十")]
    assert report().group.risk_count("compliance") == 0  # closed, or registered after the report


def test_export_and_table_rows_use_names_in_both_languages() -> None:
    result = report()
    zh = hr_rules.hr_export_rows(result, SETTINGS, "zh_CN")
    en = hr_rules.hr_export_rows(result, SETTINGS, "en_US")
    assert [r["hospital"] for r in zh] == ["A院", "B院", "集团"] and en[-1]["hospital"] == "Group"
    assert list(zh[0]) == hr_rules.hr_columns(SETTINGS)
    assert zh[0]["turnover_rate"] == 0.2857 and zh[1]["labour_disputes"] == 1 and zh[2]["revenue_per_head"] == 246153.85
    rows = hr_rules.hr_bitable_rows(result, SETTINGS)
    f = SETTINGS.fields.hr_monthly
    assert [r[f.site] for r in rows] == ["A院", "B院", "集团"] and rows[0][f.key] == "2026-09:hosp_a"
    assert rows[0][f.operations] == "营业收入 200000.0; 门诊人次 400.0"


def test_snapshot_rows_round_trip() -> None:
    rows = hr_rules.snapshot_rows("2026-09", SEPTEMBER, SETTINGS)
    assert rows[0][SETTINGS.fields.staff.key] == "2026-09:u1"
    other = hr_rules.snapshot_rows("2026-08", AUGUST, SETTINGS, hr_rules.Sites(NAMES))
    assert other[0][SETTINGS.fields.staff.site] == "A院"  # the hospital by name, read back to its id
    read = hr_rules.staff_from_rows([*rows, *other], "2026-09", SETTINGS, hr_rules.Sites(NAMES))
    assert read == SEPTEMBER
    assert hr_rules.previous_month_of("2026-01") == "2025-12" and hr_rules.month_end("2026-02") == date(2026, 2, 28)


def test_an_empty_month_has_no_rates() -> None:
    empty = hr_rules.compute_hr_report("2026-09", [], [], as_of=AS_OF, settings=SETTINGS, calendar=CAL,
                                       site_names=NAMES)
    assert empty.group.turnover_rate is None and empty.group.operations_per_head["revenue"] is None
    assert datetime(2026, 10, 8, 1, 0, tzinfo=UTC) == empty.as_of


def test_a_first_month_without_a_previous_snapshot_counts_no_joiners() -> None:
    first = hr_rules.compute_hr_report("2026-09", [], SEPTEMBER, as_of=AS_OF, settings=SETTINGS, calendar=CAL,
                                       site_names=NAMES)
    assert not first.previous_recorded and first.group.headcount_end == 7
    assert first.group.joiners == 0 and first.group.turnover_rate is None


def test_staff_from_the_directory_by_hospital_department() -> None:
    trees = {"hosp_a": [{"open_department_id": "od_a_ortho", "name": "骨科"}],
             "hosp_b": [{"open_department_id": "od_b_er", "name": "急诊科"}]}
    users = [{"open_id": "ou_1", "name": "张三", "department_ids": ["od_x", "od_a_ortho"]},
             {"open_id": "ou_1", "name": "张三", "department_ids": ["od_a_ortho"]},  # listed twice
             {"open_id": "ou_2", "name": "钱七", "department_ids": ["od_b_er"]},
             {"open_id": "ou_3", "name": "院长", "department_ids": ["od_a"]},
             {"open_id": "ou_4", "name": "已离职", "department_ids": ["od_b_er"], "status": {"is_resigned": True}}]
    found = hr_rules.staff_from_directory(trees, users, {"hosp_a": "od_a", "hosp_b": "od_b"})
    assert [(s.user_id, s.site, s.department) for s in found] == [
        ("ou_3", "hosp_a", ""), ("ou_1", "hosp_a", "骨科"), ("ou_2", "hosp_b", "急诊科")]


def test_someone_who_joined_and_left_within_the_month_counts_as_both() -> None:
    f = SETTINGS.fields.leavers
    sites = hr_rules.Sites(NAMES)
    within = hr_rules.leaver_row("u9", "冯十二", staff("u9", "冯十二", "hosp_a", "骨科"),
                                 CAL.at_local(date(2026, 9, 25), time(11)).astimezone(UTC), SETTINGS, sites, CAL)
    assert within[f.site] == "A院"
    known = {f.user_id: "u2", f.name: "李四", f.site: "A院", f.department: "骨科",
             f.left_at: rules.ms(CAL.at_local(date(2026, 9, 10), time(11)).astimezone(UTC))}  # also in the diff
    october = {**within, f.user_id: "u10", f.left_at: rules.ms(AS_OF)}
    result = hr_rules.compute_hr_report("2026-09", AUGUST, SEPTEMBER, leavers=[within, known, october], as_of=AS_OF,
                                        settings=SETTINGS, calendar=CAL, site_names=NAMES)
    a = result.hospitals[0]
    assert (a.joiners, a.leavers, a.headcount_end) == (2, 2, 3)  # 周九, and 冯十二 both joined and left
    assert {d.department: (d.joiners, d.leavers) for d in a.departments}["骨科"] == (2, 2)
    assert result.group.turnover_rate == round(2 / 6.5, 4)
