"""The reliability workload: a device fleet on a compressed business clock, and what it must cause.

Expected effects come from the pure rules only (:func:`engine.rules.all_notices` for the ladder,
:mod:`plugins.device_calibration.rules` for rows and recipients), never from the engine's own state:
for each device, which notices (cycle, step, recipient) must have gone out by the end, and what its
Bitable row must finally say after which writes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import relia_plugins as rp

from engine.feishu.activities import message_uuid
from engine.feishu.standin.state import field_id
from engine.ids import workflow_id
from engine.rules import WorkCalendar, all_notices, next_due
from plugins.device_calibration import rules
from plugins.device_calibration.config import DeviceCalibrationSettings
from plugins.device_calibration.models import date_cell

ZONE = ZoneInfo("Asia/Shanghai")
ORG = "relia"
SCENARIO = "device_calibration"
APP, TABLE, LOG = "bascnDeviceLedger", "tblDevices", "tblCalibrationLog"
MANAGERS = [f"ou_mgr_{i:02d}" for i in range(20)]
LOANS = "asset_loan"
LOAN_APP, ASSETS, LOAN_HISTORY = "bascnAssetLoan", "tblAssets", "tblAssetHistory"
KEEPERS = [f"ou_keeper_{i}" for i in range(5)]
LOAN_MANAGER = "ou_loan_manager"

# Plain devices are due T+k (T: the business day the run starts on). The registration window is
# [T 00:00, T+1 09:00): these k put no ladder boundary (a reminder made obsolete, an escalation
# overtaken) inside it, so what each device must receive does not depend on when its event landed.
SAFE_OFFSETS = (-5, -3, 0, 4, 5, 6)
CARD_DUE_OFFSET = 40  # devices that get card presses: no ladder notice falls inside the run
FIRST_CYCLE = 1  # CycleState.cycle of a device's first cycle (in idempotency keys and card values)


@dataclass(frozen=True)
class Profile:
    name: str
    devices: int  # plain + card devices; decoys come on top
    offsets: tuple[int, ...]
    sent_out: int  # devices pressed "sent for calibration" only
    calibrated: int  # devices pressed "sent", then "calibrated" with a passing result
    decoys: int  # rows no genuine event names: forged events aim at them
    worker_kills: int
    temporal_restarts: int
    loans: int = 0  # assets borrowed and returned by card presses (asset_loan)
    shifts: int = 0  # handover shifts pressed through (form, patient, submit, confirmations)
    missing_shifts: int = 0  # handover shifts nobody writes: the missing ladder
    projects: int = 0  # delivery projects created by message, moved one stage by a press (project_delivery)
    openings: int = 0  # requisitions approved and closed, one application each screened then rejected (recruiting)
    reports: int = 0  # repair tickets reported by message, accepted, done and rated
    fa_openings: int = 0  # requisitions approved in Feishu (one rejected, one withdrawn, the others approved)
    doc_hospitals: int = 0  # hospitals of the documents round (one late, one sending a file)
    scale: float = 2880.0  # a business day per 30 real seconds


PROFILES = {
    # a quick look while working on the suite itself: one fault of each kind, a shorter timeline
    "smoke": Profile("smoke", devices=40, offsets=(-3, 0), sent_out=4, calibrated=6, decoys=4,
                     worker_kills=1, temporal_restarts=1, loans=10,
                     shifts=2, missing_shifts=1, projects=3, openings=2, reports=2, fa_openings=3,
                     doc_hospitals=3),
    "short": Profile("short", devices=150, offsets=(-5, -3, 0, 4), sent_out=10, calibrated=20, decoys=10,
                     worker_kills=3, temporal_restarts=1, loans=50,
                     shifts=6, missing_shifts=2, projects=8, openings=6, reports=6, fa_openings=4,
                     doc_hospitals=5),
    "full": Profile("full", devices=300, offsets=SAFE_OFFSETS, sent_out=20, calibrated=40, decoys=20,
                    worker_kills=5, temporal_restarts=2, loans=100,
                     shifts=12, missing_shifts=4, projects=16, openings=12, reports=12, fa_openings=8,
                     doc_hospitals=9),
}


def plugin_settings() -> dict[str, Any]:
    """The organization's device_calibration settings: short ladders, no weekends, one schedule kind."""
    return {
        "default_managers": ["ou_equipment_office"],
        "bitable": {"app_token": APP, "table_id": TABLE, "log_table_id": LOG,
                    # events name fields by id: knowing the device-id field's routes them at once
                    "field_ids": {"device_id": field_id("设备编号")}},
        "reminders": {"before_days": [3, 1], "on_due": True, "working_days_only": False, "send_at": "09:00:00",
                      "after": [{"every_days": 1, "to": "manager", "times": 2}]},
        # the calibration kind only (the default's columns): one cycle per device
        "schedules": {"calibration": {"always": True, "interval_months": 12, "interval_field": "校准周期(月)",
                                      "last_field": "上次校准日期", "due_field": "有效期至",
                                      "certificate_field": "证书编号", "state_field": "校准状态"}},
        # schedules the worker registers must not fire during a run (29 February, 03:00)
        "reconcile_cron": "0 3 29 2 *", "digest_cron": "0 3 29 2 *",
    }


def settings() -> DeviceCalibrationSettings:
    return DeviceCalibrationSettings.model_validate(plugin_settings())


def loan_settings() -> dict[str, Any]:
    """asset_loan on the organization's compressed clock, with no reminder or escalation: a loan's week may
    pass within a run, and every message a loan may cause is its borrow card and its return notice."""
    return {"app_token": LOAN_APP, "asset_table_id": ASSETS, "history_table_id": LOAN_HISTORY,
            "manager_open_id": LOAN_MANAGER, "summary_cron": "0 3 29 2 *",
            "reminders": {"before_due_days": [], "on_due_date": False, "escalation": []}}


ALL_PLUGINS = (SCENARIO, LOANS, rp.HANDOVER, rp.PROJECTS, rp.RECRUITING, rp.REPAIR, rp.DOCUMENTS)


def config_toml(temporal_port: int, ingress_port: int, origin: datetime, scale: float,
                profile: Profile | None = None, plugins: Sequence[str] = ALL_PLUGINS) -> str:
    """The run's engine.toml; ``plugins``: the ones loaded and enabled (each with its settings)."""
    profile = profile or PROFILES["smoke"]
    loaded = list(plugins)
    org = {"name": "Reliability Hospital", "timezone": "Asia/Shanghai", "tenant_key": "t_standin",
           "plugins": loaded, "clock": {"scale": scale, "origin": origin.isoformat()}}
    lines = [
        "[plugins]", f"load = {json.dumps(loaded)}", "",
        "[temporal]", 'mode = "cluster"', f'address = "127.0.0.1:{temporal_port}"', "",
        "[ingress]", 'host = "127.0.0.1"', f"port = {ingress_port}", "",
        f"[organizations.{ORG}]",
        *(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in org.items() if key != "clock"),
        f"clock = {{ scale = {scale}, origin = {json.dumps(origin.isoformat())} }}", "",
    ]
    sections = {SCENARIO: plugin_settings(), LOANS: loan_settings(),
                rp.HANDOVER: rp.handover_settings(profile.missing_shifts), rp.PROJECTS: rp.project_settings(),
                rp.RECRUITING: rp.recruiting_settings(), rp.REPAIR: rp.repair_settings(),
                rp.DOCUMENTS: rp.documents_settings()}
    for name in loaded:
        lines += [f"[organizations.{ORG}.settings.{name}]", _toml_table(sections[name]), ""]
    if rp.HANDOVER in loaded:
        lines += [f"[organizations.{ORG}.sites.{rp.WARD}]", 'name = "病区"', "",
                  f"[organizations.{ORG}.sites.{rp.WARD}.settings.{rp.HANDOVER}]",
                  _toml_table(rp.ward_settings(profile.shifts))]
    if rp.RECRUITING in loaded and profile.fa_openings:
        lines += ["", f"[organizations.{ORG}.sites.{rp.RC_FA_SITE}]", 'name = "F院"', "",
                  f"[organizations.{ORG}.sites.{rp.RC_FA_SITE}.settings.{rp.RECRUITING}]",
                  _toml_table(rp.recruiting_site())]
    if rp.DOCUMENTS in loaded:
        for hospital in rp.doc_hospitals(profile.doc_hospitals):
            lines += ["", f"[organizations.{ORG}.sites.{hospital.site}]", f'name = "{hospital.name}"', "",
                      f"[organizations.{ORG}.sites.{hospital.site}.settings.{rp.DOCUMENTS}]",
                      _toml_table(hospital.settings())]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _toml_table(table: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {_toml_value(value)}" for key, value in table.items())


# ------------------------------------------------------------------------------------------- the clock


@dataclass(frozen=True)
class Clock:
    """The organization's compressed clock, computed here independently of the engine."""

    origin: datetime
    scale: float

    def business(self, real: datetime | None = None) -> datetime:
        real = real or datetime.now(UTC)
        return self.origin + (real - self.origin) * self.scale

    def real(self, business: datetime) -> datetime:
        return self.origin + (business - self.origin) / self.scale

    @classmethod
    def starting_at_midnight(cls, scale: float, now: datetime | None = None) -> tuple[Clock, date]:
        """A clock whose business time is the coming local midnight right now, and that day (T)."""
        now = now or datetime.now(UTC)
        local = now.astimezone(ZONE)
        midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=ZONE)
        # business(now) = origin + (now - origin) * scale = midnight, with origin = now - delta
        delta = (midnight - now) / (scale - 1)
        return cls(origin=now - delta, scale=scale), midnight.date()


# ----------------------------------------------------------------------------------------- the fleet


@dataclass
class Device:
    index: int
    device_id: str
    record_id: str
    group: str  # "plain" | "sent_out" | "calibrated" | "decoy"
    due: date
    fields: dict[str, Any]

    @property
    def wid(self) -> str:
        return workflow_id(ORG, SCENARIO, self.device_id)

    @property
    def custodian(self) -> str:
        return self.fields["保管人"][0]["id"]  # type: ignore[no-any-return]

    @property
    def manager(self) -> str:
        return self.fields["设备管理员"][0]["id"]  # type: ignore[no-any-return]


def build_fleet(profile: Profile, today: date) -> list[Device]:
    devices = []
    groups = (["sent_out"] * profile.sent_out + ["calibrated"] * profile.calibrated)
    groups += ["plain"] * (profile.devices - len(groups)) + ["decoy"] * profile.decoys
    for index, group in enumerate(groups):
        device_id = f"RL-{index:04d}"
        if group == "plain":
            due = today + timedelta(days=profile.offsets[index % len(profile.offsets)])
        else:
            due = today + timedelta(days=CARD_DUE_OFFSET)
        fields: dict[str, Any] = {
            "设备编号": device_id, "设备名称": f"监护仪 {index}", "型号": "M-1", "使用科室": f"科室{index % 5}",
            "存放位置": "3 楼", "保管人": [{"id": f"ou_cust_{index:04d}", "name": f"保管人{index}"}],
            "设备管理员": [{"id": MANAGERS[index % len(MANAGERS)], "name": "管理员"}],
            "科室负责人": [{"id": f"ou_head_{index % 5}", "name": "主任"}],
            "校准周期(月)": 12, "有效期至": date_cell(due, ZONE), "状态": "合格",
        }
        devices.append(Device(index, device_id, f"recRL{index:05d}", group, due, fields))
    return devices


@dataclass
class Asset:
    """An R&D item borrowed and returned (asset_loan) during the run."""

    index: int
    asset_id: str
    record_id: str
    borrower: str
    keeper: str

    @property
    def wid(self) -> str:
        return workflow_id(ORG, LOANS, self.asset_id)

    @property
    def fields(self) -> dict[str, Any]:
        return {"资产编号": self.asset_id, "名称": f"示波器 {self.index}", "类别": "instrument",
                "位置": "研发楼 3F", "保管人": [{"id": self.keeper, "name": "保管员"}], "状态": "在库"}


def build_assets(profile: Profile) -> list[Asset]:
    return [Asset(i, f"RA-{i:04d}", f"recRA{i:05d}", f"ou_borrower_{i:04d}", KEEPERS[i % len(KEEPERS)])
            for i in range(profile.loans)]


def seed(devices: list[Device], encrypt_key: str, verification_token: str,
         assets: Sequence[Asset] = (), others: set[str] = frozenset(),  # type: ignore[assignment]
         openings: Sequence[rp.Opening] = (), fa_openings: Sequence[rp.FeishuOpening] = ()) -> dict[str, Any]:
    """The stand-in's starting state: its app with an Encrypt Key, the people, the plugins' tables
    (``others``: the people of the plugins in :mod:`relia_plugins`, ``openings`` and ``fa_openings``
    recruiting's rows), the approval definition of ``fa_openings``."""
    people = {d.custodian for d in devices} | set(MANAGERS) | {"ou_equipment_office"}
    people |= {a.borrower for a in assets} | set(KEEPERS) | {LOAN_MANAGER} | set(others)
    return {
        "apps": [{"app_id": "cli_standin", "app_secret": "standin-secret", "tenant_key": "t_standin",
                  "bot_open_id": "ou_bot_standin", "encrypt_key": encrypt_key,
                  "verification_token": verification_token}],
        "users": [{"open_id": person, "name": person} for person in sorted(people)],
        "bitable": {APP: {
            TABLE: {"name": "设备台账", "records": [{"record_id": d.record_id, "fields": d.fields} for d in devices]},
            LOG: {"name": "校准日志", "records": []}},
            LOAN_APP: {
                ASSETS: {"name": "研发物资台账",
                         "records": [{"record_id": a.record_id, "fields": a.fields} for a in assets]},
                LOAN_HISTORY: {"name": "借还记录", "records": []}},
            **rp.tables(list(openings), list(fa_openings))},
        "approvals": rp.approval_definitions(),
    }


# ---------------------------------------------------------------------------------- expected effects


@dataclass
class Expected:
    """What one device must have caused by the end of the run."""

    notices: dict[str, tuple[str, int, str, str]] = field(default_factory=dict)  # key -> (device, cycle, step, to)
    writes: list[dict[str, Any]] = field(default_factory=list)  # the row's updates, in order
    final: dict[str, Any] = field(default_factory=dict)  # cells the row must end with
    log_entries: int = 0  # rows in the calibration log table
    last_notice_at: datetime | None = None  # business time of the last planned notice
    planned: dict[str, datetime] = field(default_factory=dict)  # key -> business time, for notices due after
    # registration (a catch-up notice has no moment to be late against)


def _note(expected: Expected, device: Device, cycle: int, step: str, to: str) -> str:
    key = f"{device.wid}:{cycle}:{step}:{to}"
    expected.notices[key] = (device.device_id, cycle, step, to)
    return key


def ladder_expectation(device: Device, window: tuple[datetime, datetime], calendar: WorkCalendar,
                       s: DeviceCalibrationSettings) -> Expected:
    """A device registered at some moment in ``window`` and left alone: its ladder, then 停用 at the due date.

    A reminder whose moment passed before registration still goes out (catch-up) unless the moment is
    nearer the next notice's (then it is obsolete); an escalation is skipped when the next one on its
    rung is already due. Raises if a boundary falls inside ``window``: the fleet must avoid ambiguity.
    """
    plan = all_notices(device.due, s.reminders, calendar)
    end = window[1]
    reminders = [n for n in plan if n.data["kind"] in ("before", "due")]
    escalations = [n for n in plan if n.data["kind"] == "after"]
    kept = []
    for i, notice in enumerate(reminders):
        if notice.data["kind"] == "before":
            successor = reminders[i + 1].at if i + 1 < len(reminders) else None
            assert successor is not None and notice.at is not None
            boundary = notice.at + (successor - notice.at) / 2
            _check_outside(device, notice.step, boundary, window)
            if end < boundary:
                kept.append(notice)
        else:
            kept.append(notice)
    for i, notice in enumerate(escalations):
        following = escalations[i + 1].at if i + 1 < len(escalations) else None
        if following is None:
            kept.append(notice)
            continue
        _check_outside(device, notice.step, following, window)
        if end < following:
            kept.append(notice)
    info = rules.parse_device(device.record_id, device.fields, s, ZONE)
    assert info is not None
    expected = Expected()
    for notice in kept:
        assert notice.step is not None
        role = notice.data["to"]
        audience = "owner+manager" if notice.step == "due" else str(role)
        for to in rules.recipients(audience, info.info, s):
            key = _note(expected, device, FIRST_CYCLE, notice.step, to)
            if notice.at is not None and notice.at > end:
                expected.planned[key] = notice.at
    expected.last_notice_at = max(n.at for n in kept if n.at is not None)
    status, state = rules.bitable_labels("overdue", "overdue", s)
    expected.writes = [{"状态": status, "校准状态": state}]
    expected.final = {"状态": status, "校准状态": state}
    expected.log_entries = 1 + len(kept) + 1  # registered, one per notice step, status_overdue
    return expected


def _check_outside(device: Device, step: str | None, boundary: datetime, window: tuple[datetime, datetime]) -> None:
    start, end = window
    assert not start <= boundary <= end, (
        f"registration ran from {start:%m-%d %H:%M} to {end:%m-%d %H:%M} (business time): {device.device_id}'s "
        f"{step} may or may not be obsolete (boundary {boundary.astimezone(ZONE):%m-%d %H:%M}); this machine "
        "registered the fleet too slowly for its offsets (see SAFE_OFFSETS)")


@dataclass(frozen=True)
class CardPlan:
    """The card presses a device gets (its values are what the buttons on its reminder card carry)."""

    vendor: str
    sent_on: date
    performed_on: date | None  # None: only "sent for calibration"
    certificate: str
    form_requested: bool


def card_plan(device: Device, today: date) -> CardPlan:
    return CardPlan(vendor=f"计量院{device.index % 3}", sent_on=today - timedelta(days=2),
                    performed_on=(today - timedelta(days=1)) if device.group == "calibrated" else None,
                    certificate=f"CERT-{device.device_id}", form_requested=device.index % 2 == 0)


def card_expectation(device: Device, plan: CardPlan, form_event_id: str | None,
                     s: DeviceCalibrationSettings) -> Expected:
    info = rules.parse_device(device.record_id, device.fields, s, ZONE)
    assert info is not None
    expected = Expected()
    status, state = rules.bitable_labels("sent_out", "", s)
    sent = {"状态": status, "校准状态": state, "送检单位": plan.vendor, "送检日期": date_cell(plan.sent_on, ZONE)}
    expected.writes = [sent]
    expected.final = dict(sent)
    expected.log_entries = 2  # registered, sent_out
    if form_event_id is not None:
        # "calibrated" pressed: the result form goes to whoever pressed (the device's manager here)
        _note(expected, device, FIRST_CYCLE, f"result_form:{form_event_id}", device.manager)
    if plan.performed_on is not None:
        status, state = rules.bitable_labels("active", "", s)
        next_due_day = next_due(plan.performed_on, 12)
        done = {"状态": status, "校准状态": state, "上次校准日期": date_cell(plan.performed_on, ZONE),
                "有效期至": date_cell(next_due_day, ZONE), "证书编号": plan.certificate}
        expected.writes.append(done)
        expected.final.update(done)
        for to in rules.recipients("owner+manager", info.info, s):
            _note(expected, device, FIRST_CYCLE, "calibrated", to)
        expected.log_entries += 2  # result, cycle_completed
    return expected


def loan_expectation(asset: Asset) -> Expected:
    """Borrowed, then returned, by its borrower's card presses: two notices, two row states, two history rows.

    Row writes are compared on the status cell only (the others carry the moments of the presses).
    """
    expected = Expected()
    for step in ("borrowed", "returned"):
        key = f"{asset.wid}:0:{step}"  # the first loan of the asset's workflow is its cycle 0
        expected.notices[key] = (asset.asset_id, 0, step, asset.borrower)
    expected.writes = [{"状态": "借出"}, {"状态": "在库"}]
    expected.final = {"状态": "在库"}  # and no borrower: checked apart (an emptied cell may read [] or nothing)
    expected.log_entries = 2  # borrow, return
    return expected


def decoy_expectation(device: Device) -> Expected:
    """A row only forged events name: nothing may happen to it."""
    return Expected(final={"状态": device.fields["状态"]}, writes=[], log_entries=0)


# ----------------------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    expected: int = 0
    seen: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)


def compare_messages(expected: dict[str, tuple[str, int, str, str]], messages: list[dict[str, Any]]) -> Comparison:
    """Messages by idempotency key (the uuid the engine derives from it) and by recipient/item/step."""
    by_uuid = {message_uuid(ORG, key): key for key in expected}
    counts: Counter[str] = Counter()
    per_target: Counter[tuple[str, str, str]] = Counter()
    result = Comparison(expected=len(expected))
    for message in messages:
        if message.get("_origin") != "bot":
            continue
        key = by_uuid.get(message.get("_uuid", ""))
        to = (message.get("_to") or {}).get("id")
        if key is None:
            result.duplicated.append(f"unexpected message to {to}: {message.get('body', {}).get('content', '')[:160]}")
            continue
        device_id, _, step, recipient = expected[key]
        if to != recipient:
            result.duplicated.append(f"{key}: sent to {to}, not {recipient}")
            continue
        if device_id not in message["body"]["content"]:
            result.duplicated.append(f"{key}: the message does not name {device_id}")
            continue
        counts[key] += 1
        per_target[(recipient, device_id, step)] += 1
    result.seen = sum(counts.values())
    result.lost = [key for key in expected if counts[key] == 0]
    result.duplicated += [f"{key} x{n}" for key, n in counts.items() if n > 1]
    result.duplicated += [f"{target} x{n}" for target, n in per_target.items() if n > 1 and
                          not any(f"x{n}" in d for d in result.duplicated)]
    return result


def lateness(planned: dict[str, datetime], messages: list[dict[str, Any]], clock: Clock) -> list[tuple[float, str]]:
    """How late (business hours) each planned notice reached the stand-in (its first send), latest last."""
    by_uuid = {message_uuid(ORG, key): key for key in planned}
    first: dict[str, datetime] = {}
    for message in messages:
        key = by_uuid.get(message.get("_uuid", ""))
        if key is None:
            continue
        sent = clock.business(datetime.fromtimestamp(int(message["create_time"]) / 1000, UTC))
        first[key] = min(first.get(key, sent), sent)
    return sorted(((first[key] - planned[key]).total_seconds() / 3600, key) for key in first)


def collapse(writes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive identical writes are one update applied again (an activity retried after a crash)."""
    out: list[dict[str, Any]] = []
    for write in writes:
        if not out or out[-1] != write:
            out.append(write)
    return out
