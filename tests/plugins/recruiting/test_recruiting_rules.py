"""Pure parts of recruiting: contacts and hashes, duplicates, pool matching, approvals, stages, SLAs on
working days, checklists, risk warnings, the report, settings, routing and templates."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from recruiting_helpers import config

import plugins.recruiting as plugin
from engine import actions as act
from engine.config import parse_config
from engine.events import BitableRecordChanged, CardAction, FeishuEvent, UserCreated
from engine.plugins import load_plugins
from engine.templates import TemplateEngine
from plugins.recruiting import rules
from plugins.recruiting.commands import write_csv
from plugins.recruiting.config import RecruitingSettings
from plugins.recruiting.models import ChecklistEntry, RequisitionFacts
from plugins.recruiting.routing import hire_move, route

SALT = b"s3cret"  # the contact key (a test value)
ORG_KEY = "test-recruiting-contact-key-0123456789abcdef"
CAL = rules.calendar_for("Asia/Shanghai")
SETTINGS = RecruitingSettings(roles={"hospital_head": "ou_head", "group_hr": "ou_ghr", "recruiter": "ou_rc"})


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    return CAL.at_local(day, time(hour, minute)).astimezone(UTC)


# ------------------------------------------------------------------------------------------ contacts


@pytest.mark.parametrize("raw", ["+86 138-0000-0001", "0086 13800000001", "(86)138 0000 0001", "13800000001",
                                 "138.0000.0001", "86 138 0000 0001"])
def test_phone_numbers_normalize_to_one_form(raw: str) -> None:
    assert rules.normalize_phone(raw) == "13800000001"


def test_other_phones_and_garbage() -> None:
    assert rules.normalize_phone("+44 20 7946 0958") == "+442079460958"
    assert rules.normalize_phone("010-8888-6666") == "01088886666"
    assert rules.normalize_phone("n/a") is None and rules.normalize_phone("") is None
    assert rules.normalize_phone("123") is None


def test_emails_are_trimmed_and_lower_cased() -> None:
    assert rules.normalize_email("  Li.Lei@Example.COM ") == "li.lei@example.com"
    assert rules.normalize_email("no-at-sign") is None and rules.normalize_email("a@b@c") is None


def test_hashes_are_salted_and_format_independent() -> None:
    one = rules.contact_hashes("+86 138-0000-0001", "Li.Lei@example.com", SALT)
    two = rules.contact_hashes("13800000001", " li.lei@EXAMPLE.com", SALT)
    assert one == two and len(one) == 2 and all(len(h) == 64 for h in one)
    assert rules.contact_hashes("13800000001", None, b"other") != one[:1]
    assert "13800000001" not in "".join(one)
    assert rules.contact_hashes(None, None, SALT) == []


def test_duplicates_link_to_the_earlier_candidate() -> None:
    hashes = rules.contact_hashes("13800000001", None, SALT)
    known = [rules.KnownApplication(application_id="A1", candidate_id="c_first", hashes=hashes, site="hosp_a"),
             rules.KnownApplication(application_id="B9", candidate_id="c_other",
                                    hashes=rules.contact_hashes("13900000009", None, SALT), site="hosp_b")]
    candidate, linked, decision = rules.link_candidate("B1", rules.contact_hashes(
        "+86 138 0000 0001", "x@y.z", SALT), known)
    assert candidate == "c_first" and [link.application_id for link in linked] == ["A1"]
    assert decision.action == "duplicate" and "hosp_a" in decision.reason
    fresh, none, new = rules.link_candidate("C1", rules.contact_hashes("13700000000", None, SALT), known)
    assert fresh.startswith("c_") and fresh not in ("c_first", "c_other") and not none and new.action == "new"


# ---------------------------------------------------------------------------------------------- pool


def test_pool_matching_scores_and_excludes() -> None:
    req = RequisitionFacts(req_id="R1", site="hosp_a", department="心内科", title="护士", tags=["ICU", "夜班"])
    pool = [rules.PoolEntry(candidate_id="c1", name="甲", site="hosp_b", department="心内科", title="护士",
                            tags=["icu"]),
            rules.PoolEntry(candidate_id="c2", name="乙", site="hosp_b", department="骨科", title="医生",
                            tags=["夜班"]),
            rules.PoolEntry(candidate_id="c3", name="丙", site="hosp_b", department="心内科", title="医生",
                            retain_until=date(2020, 1, 1)),
            rules.PoolEntry(candidate_id="c4", name="丁", site="hosp_b", department="心内科", title="药师")]
    matches = rules.match_pool(req, pool, date(2026, 11, 1), SETTINGS, exclude=["c4"])
    assert [(m.candidate_id, m.score) for m in matches] == [("c1", 5)]
    assert matches[0].reasons == ["department 心内科", "title 护士", "tags icu"]


def test_pool_admission_needs_consent() -> None:
    assert rules.pool_admission(False, "rejected", date(2026, 1, 1), SETTINGS).is_nothing
    keep = rules.pool_admission(True, "rejected", date(2026, 1, 1), SETTINGS)
    assert keep.action == "keep" and keep.data["retain_until"] == "2028-01-01"  # 730 days


# -------------------------------------------------------------------------------------- approvals


def test_approval_chain_above_thresholds() -> None:
    small = RequisitionFacts(req_id="R", headcount=1)
    steps, why = rules.approval_chain(small, SETTINGS)
    assert [s.approver for s in steps] == ["ou_head"] and why.action == "chain"
    big = RequisitionFacts(req_id="R", headcount=3)
    assert [s.role for s in rules.approval_chain(big, SETTINGS)[0]] == ["hospital_head", "group_hr"]
    senior = RequisitionFacts(req_id="R", headcount=1, grade="主任")
    steps, why = rules.approval_chain(senior, SETTINGS)
    assert len(steps) == 2 and "grade 主任" in why.reason
    _, refused = rules.approval_chain(big, RecruitingSettings())
    assert refused.action == "refuse" and "hospital_head" in refused.reason


# ------------------------------------------------------------------------------------------ stages


def test_moves_forward_and_exits_only() -> None:
    assert rules.check_move("applied", "interview", SETTINGS).reason == "applied → interview, skipping screened"
    assert rules.check_move("offer", "screened", SETTINGS).action == "refuse"
    assert rules.check_move("offer", "withdrawn", SETTINGS).action == "move"
    assert rules.check_move("rejected", "offer", SETTINGS).action == "refuse"
    assert rules.check_move("offer", "hired", SETTINGS).action == "refuse"
    assert rules.check_move("offer", "offer", SETTINGS).is_nothing
    assert rules.parse_stage("已接受", SETTINGS) == "accepted" and rules.parse_stage("Offer", SETTINGS) == "offer"
    assert rules.parse_stage([{"text": "未录用"}], SETTINGS) == "rejected" and rules.parse_stage("?", SETTINGS) is None


def test_sla_skips_weekends_and_holidays() -> None:
    # an ordinary Friday: two working days later is Tuesday, not Sunday
    friday = date(2026, 11, 13)
    due = rules.sla_due(at(friday), 2, SETTINGS, CAL)
    expected_day = CAL.add_workdays(friday, 2)
    assert due == CAL.at_local(expected_day, time(18, 0)).astimezone(UTC)
    plan = rules.sla_notices("A1", "applied", at(friday), 1, SETTINGS, CAL)
    assert [n.step for n in plan] == ["sla:1:applied:nudge", "sla:1:applied:escalate:1", "sla:1:applied:escalate:2"]
    assert [n.to for n in plan] == ["recruiter", "manager", "manager"]
    days = [CAL.local(n.at).date() for n in plan]
    assert all(CAL.is_workday(d) for d in days) and days == [date(2026, 11, 17), date(2026, 11, 18),
                                                             date(2026, 11, 19)] and expected_day == days[0]
    # over National Day (2026-10-01..07 off): interview feedback (1 working day) asked on 09-30 is due 10-08,
    # and the second escalation falls on Saturday 10-10, a make-up workday
    plan = rules.sla_notices("A1", "interview", at(date(2026, 9, 30)), 2, SETTINGS, CAL)
    assert [CAL.local(n.at).date() for n in plan] == [date(2026, 10, 8), date(2026, 10, 9), date(2026, 10, 10)]
    assert plan[0].to == "interviewer"
    assert rules.sla_notices("A1", "accepted", at(friday), 3, SETTINGS, CAL) == []


def test_pick_due_sends_only_the_latest_of_a_series() -> None:
    probation_end = date(2026, 12, 31)
    plan = rules.risk_notices(probation_end, None, SETTINGS, CAL)
    assert [n.step for n in plan] == ["risk:probation:2026-12-31:30", "risk:probation:2026-12-31:7"]
    send, skipped, later = rules.pick_due(plan, [], at(date(2026, 12, 28)))
    assert [n.step for n in send] == ["risk:probation:2026-12-31:7"] and skipped == ["risk:probation:2026-12-31:30"]
    assert later is None
    send, skipped, later = rules.pick_due(plan, [], at(date(2026, 11, 1)))
    assert not send and later == plan[0].at


def test_checklist_due_dates_and_overdue_escalation() -> None:
    start = date(2026, 12, 7)  # a Monday
    entries = rules.checklist(SETTINGS.onboarding_checklist, start, SETTINGS, CAL)
    assert {e.id: e.due for e in entries}["account"] == date(2026, 12, 4)  # the working day before
    overridden = RecruitingSettings(checklist_owners={"badge": "hr"})
    assert {e.id: e.owner for e in rules.checklist(overridden.onboarding_checklist, start, overridden, CAL)}[
        "badge"] == "hr"
    notices = rules.checklist_notices("onb", entries[:1], SETTINGS, CAL)
    assert notices[0].kind == "item_due" and CAL.local(notices[0].at).date() == date(2026, 12, 3)
    assert [n.to for n in notices[1:]] == ["hr"] * 3
    done = ChecklistEntry(id="x", label="x", owner="it", due=start, done_at=at(start))
    assert rules.checklist_notices("onb", [done], SETTINGS, CAL) == []
    assert [e.id for e in rules.overdue_items(entries, date(2026, 12, 8))] == ["account", "badge", "contract"]


def test_probation_and_contract_ends() -> None:
    assert rules.probation_end(date(2026, 1, 5), 6) == date(2026, 7, 4)
    assert rules.probation_end(date(2026, 1, 5), 0) is None
    assert rules.contract_end(date(2026, 1, 31), 36) == date(2029, 1, 30)


# ------------------------------------------------------------------------------------------ report


def test_report_runs_on_the_first_working_day_only() -> None:
    # 2026-10-01..07 is National Day: October's first working day is the 8th
    assert rules.report_due(at(date(2026, 10, 1), 9, 0), CAL).is_nothing
    assert rules.report_due(at(date(2026, 10, 9), 9, 0), CAL).is_nothing
    run = rules.report_due(at(date(2026, 10, 8), 9, 0), CAL)
    assert run.action == "report" and run.data["month"] == "2026-09"
    assert rules.report_due(at(date(2026, 12, 1), 9, 0), CAL).data["month"] == "2026-11"


def test_report_figures(tmp_path: Path) -> None:
    f = SETTINGS.fields
    start, _ = rules.month_bounds("2026-11", CAL)
    d = lambda days: rules.ms(start + timedelta(days=days))  # noqa: E731 - a tiny local shorthand
    reqs = [{f.requisitions.site: "a", f.requisitions.headcount: 2, f.requisitions.approved_at: d(1)},
            {f.requisitions.site: "a", f.requisitions.headcount: 5, f.requisitions.approved_at: d(1),
             f.requisitions.closed_at: d(5)},
            {f.requisitions.site: "b", f.requisitions.headcount: 1}]  # never approved
    a = f.applications
    apps = [{a.site: "a", a.applied_at: d(0), a.accepted_at: d(10), a.stage: "已接受", a.from_pool: "是"},
            {a.site: "a", a.applied_at: d(2), a.accepted_at: d(6), a.stage: "已入职"},
            {a.site: "b", a.applied_at: d(3), a.ended_at: d(9), a.exited_from: "Offer", a.stage: "已撤回"},
            {a.site: "b", a.applied_at: d(-20), a.stage: "面试", a.sla_due: d(4)},
            {a.site: "b", a.applied_at: d(40), a.stage: "已投递"}]
    o = f.onboarding
    people = [{o.site: "a", o.start_date: d(12), o.status: "employed", o.probation_end: "2026-12-20"},
              {o.site: "b", o.start_date: d(-100), o.left_at: d(20), o.status: "left", o.overdue_items: 2}]
    report = rules.compute_report("2026-11", reqs, apps, people, at(date(2026, 12, 1), 9), SETTINGS, CAL,
                                  sites=["a", "b", "c"])
    by = {r.site: r for r in report.rows}
    assert [r.site for r in report.rows] == ["a", "b", "c", "*"]
    assert (by["a"].open_positions, by["a"].applications, by["a"].hires) == (2, 2, 2)
    assert by["a"].time_to_hire_days == 7.0 and by["a"].offer_acceptance_rate == 1.0 and by["a"].pool_reuse == 1
    assert by["a"].joined == 1 and by["a"].open_risks == 1  # probation ends within 30 days of the report
    assert by["b"].applications == 1 and by["b"].offer_acceptance_rate == 0.0 and by["b"].overdue_slas == 1
    assert by["b"].left == 1 and by["b"].net_headcount == -1 and by["b"].open_risks == 0  # left: no risk
    assert by["c"].applications == 0 and by["c"].time_to_hire_days is None
    group = report.group
    assert (group.applications, group.hires, group.net_headcount) == (3, 2, 0)
    assert group.offer_acceptance_rate == round(2 / 3, 3) and group.time_to_hire_days == 7.0
    out = tmp_path / "r.csv"
    write_csv(rules.report_csv_rows(report), out)
    lines = out.read_text("utf-8-sig").splitlines()
    assert lines[0].startswith("month,site,open_positions") and lines[-1].startswith("2026-11,*,2,3,2,7.0,0.667")
    assert "-1" in lines[2].split(",")  # b's net headcount: a negative number is written as a number
    rows_out = rules.report_csv_rows(report)
    rows_out[0]["site"] = "=cmd|' /C calc'!A0"
    write_csv(rows_out, out)
    with out.open(encoding="utf-8-sig", newline="") as handle:
        assert next(csv.DictReader(handle))["site"] == "'=cmd|' /C calc'!A0"
    keyed = rules.report_bitable_rows(report, SETTINGS)
    assert keyed[-1][f.report.key] == "2026-11:*" and keyed[-1][f.report.site] == "集团"


# ----------------------------------------------------------------------------------------- settings


def test_settings_defaults_and_validation() -> None:
    settings = RecruitingSettings()
    assert settings.stage_names == ["applied", "screened", "interview", "offer", "accepted", "onboarded"]
    assert settings.sla_workdays == {"applied": 2, "screened": 2, "interview": 1, "offer": 3}
    with pytest.raises(ValidationError, match="unknown stages"):
        RecruitingSettings(sla_workdays={"nope": 1})
    with pytest.raises(ValidationError, match="unknown roles"):
        RecruitingSettings(checklist_owners={"badge": "janitor"})
    with pytest.raises(ValidationError):
        RecruitingSettings(typo=1)


def test_hashes_are_keyed_so_a_known_salt_recovers_no_phone_number() -> None:
    """The attack: knowing the (public) salt, hash every number of the prefix until one matches."""
    import hashlib
    import hmac

    phone = "13800004321"
    key = b"an organization's contact key, never published"
    [stored] = rules.contact_hashes(phone, None, key)
    assert stored == hmac.new(key, f"phone\x1f{phone}".encode(), hashlib.sha256).hexdigest()
    public = "recruiting-dev-salt-change-me"
    candidates = [f"1380000{n:04d}" for n in range(10_000)]  # a slice of the prefix, the number among them
    # the scheme of earlier versions falls to the search...
    salted = {hashlib.sha256(f"{public}\x1fphone\x1f{c}".encode()).hexdigest(): c for c in candidates}
    assert salted[hashlib.sha256(f"{public}\x1fphone\x1f{phone}".encode()).hexdigest()] == phone
    # ...the keyed one does not, whatever the attacker guesses as the key's stand-in
    for guess in (public.encode(), b"", b"recruiting"):
        tried = {rules.contact_hashes(c, None, guess)[0] for c in candidates}
        assert stored not in tried and stored not in salted


def test_matching_hashes_cover_previous_keys_current_first() -> None:
    old, new = b"old key", b"new key"
    both = rules.matching_hashes("13800000001", "li@x.cn", [new, old])
    assert both[:2] == rules.contact_hashes("13800000001", "li@x.cn", new)
    assert both[2:] == rules.contact_hashes("13800000001", "li@x.cn", old)


def _org(doc: dict[str, Any]) -> Any:
    plugins = load_plugins(modules={"recruiting": plugin}, entry_points=False)
    return next(iter(parse_config(doc, Path("t.toml"), plugins.scenarios).orgs.values()))


@pytest.fixture(autouse=True)
def contact_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECRUITING_CONTACT_KEY", ORG_KEY)
    monkeypatch.delenv("RECRUITING_CONTACT_KEY_PREVIOUS", raising=False)


def test_sites_override_people_and_slas_but_not_stages() -> None:
    doc = config()
    doc["organizations"]["acme"]["sites"]["hosp_b"]["settings"]["recruiting"]["sla_workdays"] = {"applied": 1}
    org = _org(doc)
    assert org.settings("recruiting", "hosp_b").sla_workdays["applied"] == 1
    assert org.settings("recruiting", "hosp_b").sla_workdays["interview"] == 1
    assert org.settings("recruiting", "hosp_a").roles.recruiter == "ou_rc_a"
    assert org.settings("recruiting", "hosp_a").roles.group_hr == "ou_group_hr"  # kept from the group
    doc["organizations"]["acme"]["sites"]["hosp_b"]["settings"]["recruiting"]["stages"] = []
    with pytest.raises(Exception, match="stages"):
        _org(doc)


# ------------------------------------------------------------------------------------------ routing


def _now() -> datetime:
    return datetime(2026, 11, 2, tzinfo=UTC)


def test_routing_of_cards_rows_contacts_and_hire(monkeypatch: pytest.MonkeyPatch) -> None:
    org = _org(config())
    press = CardAction(event_id="e1", event_type="card.action.trigger", create_time=_now(), operator_open_id="ou_x",
                       action_value={"scenario": "recruiting", "op": "approve", "req": "R1"})
    [update] = route(press, org) or []
    assert isinstance(update, act.UpdateWorkflow) and update.key == "req:R1" and update.arg.approve
    other = CardAction(event_id="e2", event_type="card.action.trigger", create_time=_now(),
                       action_value={"scenario": "asset_loan", "op": "approve"})
    assert route(other, org) is None
    form = CardAction(event_id="e3-abcdefghijkl", event_type="card.action.trigger", create_time=_now(),
                      operator_open_id="ou_rc_a", action_value={"scenario": "recruiting", "op": "open_req"},
                      form_value={"site": "hosp_a", "department": "检验科", "title": "技师", "headcount": "2",
                                  "tags": "PCR、生化"})
    [start] = route(form, org) or []
    assert isinstance(start, act.StartWorkflow) and start.args[0].facts.tags == ["PCR", "生化"]
    assert start.args[0].facts.headcount == 2 and start.key.startswith("req:R")

    row = BitableRecordChanged(event_id="e4", event_type="drive.file.bitable_record_changed_v1", create_time=_now(),
                               app_token="bascnRecruiting", table_id="tblApplications", record_id="rec1",
                               action="record_edited")
    [signal] = route(row, org) or []
    assert isinstance(signal, act.SignalWithStart) and signal.key == "app:rec1" and signal.signal == "record_changed"
    foreign = row.model_copy(update={"app_token": "bascnOther"})
    assert route(foreign, org) is None

    user = UserCreated(event_id="e5", event_type="contact.user.created_v3", create_time=_now(), open_id="ou_new",
                       mobile="+86 138 0000 0001")
    [match] = route(user, org) or []
    key = org.keyring("recruiting").key("contact_hash")
    assert match.args[0].hashes == rules.contact_hashes("13800000001", None, key)
    # during a key rotation the previous key's hash is looked up too (after the current one)
    monkeypatch.setenv("RECRUITING_CONTACT_KEY_PREVIOUS", "test-recruiting-previous-key-0123456789")
    [match] = route(user, org) or []
    previous = org.keyring("recruiting").keys("contact_hash")[1]
    assert match.args[0].hashes == [*rules.contact_hashes("13800000001", None, key),
                                    *rules.contact_hashes("13800000001", None, previous)]
    assert "13800000001" not in match.model_dump_json()

    settings = RecruitingSettings(hire={"stage_map": {"s1": "screened"}})
    assert hire_move("hire.application.stage_changed_v1", {"application_id": "9", "target_stage_id": "s1"},
                     settings) == ("9", "screened")
    assert hire_move("hire.offer.status_changed_v1", {"event": {"application_id": "9", "offer_status": "accepted"}},
                     settings) == ("9", "accepted")
    assert hire_move("hire.application.stage_changed_v1", {"application_id": "9", "target_stage_id": "x"},
                     settings) is None
    unknown = FeishuEvent(event_id="e6", event_type="hire.offer.status_changed_v1", create_time=_now(), raw={})
    assert route(unknown, org) is None


def test_schedule_is_daily_with_a_first_workday_check() -> None:
    [spec] = plugin.schedules(org=_org(config()))
    assert spec.cron == "0 9 * * *" and spec.workflow == "recruiting.MonthlyReport"


# ---------------------------------------------------------------------------------------- templates


def test_every_template_renders_in_both_locales() -> None:
    engine = TemplateEngine({"recruiting": Path(plugin.__file__).parent / "templates"})
    assert engine.check_all() == []
    names = set(engine.names())
    assert {"recruiting:approval.card", "recruiting:stage.card", "recruiting:report.card", "recruiting:notice"} <= names
    common = {"name": "李雷", "site": "hosp_a", "title": "护士", "reason": "r"}
    req = {"req_id": "R1", "site": "hosp_a", "department": "心内科", "title": "护士", "headcount": 2}
    kinds = {
        "req_approved": {"req": req, "status": "open"},
        "req_rejected": {"req": req, "status": "rejected", "comment": "预算不足"},
        "duplicate": {"app": {"name": "李雷", "site": "hosp_b", "title": "护士"},
                      "linked": [{"application_id": "A1", "site": "hosp_a", "req_id": "R1", "stage": "applied"}]},
        "item_due": {**common, "item_label": "制作工牌", "due": "2026-12-01"},
        "item_overdue": {**common, "item_label": "制作工牌", "due": "2026-12-01", "owner": "admin"},
        "contract": {**common, "end": "2029-01-30", "lead_days": 60},
        "account_matched": {**common, "open_id": "ou_x"},
    }
    for kind, context in kinds.items():
        for locale in ("zh_CN", "en_US"):
            text = engine.render_message("recruiting:notice", {"kind": kind, **context}, locale=locale).content
            assert "李雷" in text or "R1" in text, (kind, locale)
