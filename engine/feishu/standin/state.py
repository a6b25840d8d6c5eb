"""The stand-in's world: apps, users, chats, messages, images and Bitable tables, with JSON persistence.

Everything a developer would look at after a run is plain JSON-able data, so :meth:`State.save` writes it
as is and :meth:`State.load` reads it back. Short-lived bookkeeping (idempotency caches, issued tokens,
OAuth codes) lives here too but is not persisted: a restarted Feishu would not remember it either way that
matters to the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

STATE_VERSION = 1
_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 32, alphabet: str = "0123456789abcdef") -> str:
    """A random id shaped like Feishu's (``om_…``, ``oc_…``, ``rec…``)."""
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def record_id() -> str:
    """Bitable record ids are ``rec`` plus a short mixed-case alphanumeric tail."""
    return new_id("rec", 11, _ALNUM)


def stable_id(prefix: str, *parts: str, length: int = 32) -> str:
    """A deterministic id (p2p chats, union ids), so repeated runs agree with each other."""
    return prefix + hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:length]


def field_id(name: str) -> str:
    """A stable Bitable field id for a field name (events carry field ids, not names)."""
    return stable_id("fld", name, length=10)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class App:
    """A self-built app installed in one tenant, with its bot."""

    app_id: str
    app_secret: str
    tenant_key: str
    bot_open_id: str
    bot_name: str = "Stand-in Bot"
    # per-app event credentials; None means the stand-in's own
    encrypt_key: str | None = None
    verification_token: str | None = None


@dataclass
class Token:
    value: str
    kind: str  # "tenant" | "app" | "user"
    app_id: str
    expires_at: float
    open_id: str | None = None  # user tokens only
    revoked: bool = False

    def valid(self, now: float) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass
class State:
    """All stand-in data. Dict values are Feishu-shaped JSON objects; keys starting with ``_`` are private."""

    apps: dict[str, App] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # open_id -> user
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)  # chat_id -> chat
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # message_id -> message (ordered)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # image_key -> metadata
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file_key -> metadata (no content)
    pins: list[dict[str, Any]] = field(default_factory=list)
    # tenant_key -> {"tenant_key", "name", "timezone", "plugins"}: the organizations, for the outbox page
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)
    # app_token -> table_id -> {"name": str, "records": {record_id: record}}
    bitable: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # approval_code -> {"approval_code", "approval_name", "nodes": [{"node_id", "custom_node_id", "name",
    # "approvers": [open_id, ...]}]}; instance_code -> instance (routes_approval.py)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval_instances: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval_subscriptions: dict[str, list[str]] = field(default_factory=dict)  # app_id -> approval codes
    # open_department_id -> {"open_department_id", "department_id", "name", "parent_department_id"} ("0": root)
    departments: dict[str, dict[str, Any]] = field(default_factory=dict)
    # not persisted
    tokens: dict[str, Token] = field(default_factory=dict)
    idempotency: dict[str, tuple[float, Any]] = field(default_factory=dict)
    oauth_codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    # ---- users -------------------------------------------------------------------------------------
    def add_user(self, open_id: str | None = None, *, name: str = "", email: str | None = None,
                 mobile: str | None = None, user_id: str | None = None, department: str | None = None,
                 **extra: Any) -> dict[str, Any]:
        """Add (or replace) a user; missing ids are generated."""
        open_id = open_id or new_id("ou_")
        user = {
            "open_id": open_id,
            "union_id": extra.pop("union_id", None) or stable_id("on_", open_id),
            "user_id": user_id or stable_id("", open_id, length=8),
            "name": name or open_id,
            "en_name": extra.pop("en_name", "") or name or open_id,
            "email": email or "",
            "mobile": mobile or "",
            "department": department or "",
            "department_ids": extra.pop("department_ids", None) or ([department] if department else []),
            "employee_no": extra.pop("employee_no", ""),
            **extra,
        }
        self.users[open_id] = user
        return user

    def add_file(self, name: str, content: bytes, *, file_type: str = "stream", app_id: str = "",
                 sender_open_id: str = "") -> str:
        """Keep a file's metadata (uploaded by the bot, or sent by a user); returns its new ``file_key``."""
        key = new_id("file_v3_")
        self.files[key] = {"file_key": key, "file_name": name, "file_type": file_type, "size": len(content),
                           "sha256": hashlib.sha256(content).hexdigest(), "app_id": app_id,
                           "sender_open_id": sender_open_id}
        return key

    def find_user(self, value: str, id_type: str | None = None) -> dict[str, Any] | None:
        """Look a user up by ``open_id``/``user_id``/``union_id``/``email``/``mobile`` (any when not given)."""
        if not value:
            return None
        if id_type in (None, "open_id") and value in self.users:
            return self.users[value]
        keys = [id_type] if id_type else ["open_id", "user_id", "union_id", "email", "mobile"]
        for user in self.users.values():
            if any(user.get(k) and user.get(k) == value for k in keys):
                return user
        return None

    # ---- departments (contact directory) ------------------------------------------------------------
    def add_department(self, open_department_id: str, *, name: str = "", parent_department_id: str = "0",
                       department_id: str | None = None) -> dict[str, Any]:
        """Add (or replace) a department of the contact directory; its users list it in ``department_ids``."""
        department = {"open_department_id": open_department_id,
                      "department_id": department_id or stable_id("", open_department_id, length=8),
                      "name": name or open_department_id, "parent_department_id": parent_department_id or "0",
                      "status": {"is_deleted": False}}
        self.departments[open_department_id] = department
        return department

    # ---- tenants -----------------------------------------------------------------------------------
    def add_tenant(self, tenant_key: str, *, name: str = "", timezone: str = "Asia/Shanghai",
                   plugins: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """Name an organization (tenant): its display name, IANA zone and enabled plugins."""
        tenant = {"tenant_key": tenant_key, "name": name or tenant_key, "timezone": timezone,
                  "plugins": list(plugins)}
        self.tenants[tenant_key] = tenant
        return tenant

    # ---- bitable -----------------------------------------------------------------------------------
    def table(self, app_token: str, table_id: str, *, create: bool = False) -> dict[str, Any] | None:
        base = self.bitable.get(app_token)
        if base is None:
            if not create:
                return None
            base = self.bitable.setdefault(app_token, {})
        table = base.get(table_id)
        if table is None and create:
            table = base.setdefault(table_id, {"name": table_id, "records": {}})
        return table

    # ---- idempotency -------------------------------------------------------------------------------
    def remembered(self, key: str) -> Any | None:
        """The result stored under ``key`` if it has not expired."""
        hit = self.idempotency.get(key)
        if hit is None:
            return None
        expires_at, value = hit
        if time.time() >= expires_at:
            del self.idempotency[key]
            return None
        return value

    def remember(self, key: str, value: Any, ttl: float) -> None:
        self.idempotency[key] = (time.time() + ttl, value)

    # ---- persistence -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "apps": [asdict(a) for a in self.apps.values()],
            "users": list(self.users.values()),
            "chats": self.chats,
            "messages": list(self.messages.values()),
            "images": self.images,
            "files": self.files,
            "pins": self.pins,
            "tenants": list(self.tenants.values()),
            "bitable": {
                app_token: {
                    table_id: {"name": t.get("name", table_id), "records": list(t["records"].values())}
                    for table_id, t in tables.items()
                }
                for app_token, tables in self.bitable.items()
            },
            "approvals": list(self.approvals.values()),
            "approval_instances": list(self.approval_instances.values()),
            "approval_subscriptions": self.approval_subscriptions,
            "departments": list(self.departments.values()),
        }

    def merge_json(self, data: dict[str, Any], *, today: date | None = None) -> None:
        """Load a saved state or a hand-written seed into this state (seed-friendly: ids are optional).

        In a seed, a Bitable record may be ``{"record_id": ..., "fields": {...}}`` or just its fields, and a
        user needs only a name; everything missing is generated. A date cell may be written relative to the
        day the seed is loaded, ``{"$days_from_today": -3}``, so sample data stays current; ``today`` (a day
        in China) fixes that day instead, for a test that must not depend on when it runs.
        """
        for app in data.get("apps", []):
            self.apps[app["app_id"]] = App(**app)
        for user in data.get("users", []):
            user = dict(user)
            self.add_user(user.pop("open_id", None), **user)
        self.chats.update(data.get("chats", {}))
        for message in data.get("messages", []):
            self.messages[message["message_id"]] = message
        self.images.update(data.get("images", {}))
        self.files.update(data.get("files", {}))
        self.pins.extend(data.get("pins", []))
        for tenant in data.get("tenants", []):
            tenant = dict(tenant)
            self.add_tenant(tenant.pop("tenant_key"), **tenant)
        for app_token, tables in data.get("bitable", {}).items():
            for table_id, table in tables.items():
                target = self.table(app_token, table_id, create=True)
                assert target is not None
                target["name"] = table.get("name", table_id)
                records = table.get("records", [])
                if isinstance(records, dict):
                    records = list(records.values())
                for raw in records:
                    record = _seed_record(raw, today)
                    target["records"][record["record_id"]] = record

        for definition in data.get("approvals", []):
            self.add_approval(**definition)
        for instance in data.get("approval_instances", []):
            self.approval_instances[instance["instance_code"]] = instance
        for app_id, codes in data.get("approval_subscriptions", {}).items():
            known = self.approval_subscriptions.setdefault(app_id, [])
            known.extend(code for code in codes if code not in known)
        for department in data.get("departments", []):
            department = {k: v for k, v in department.items() if k != "status"}
            self.add_department(department.pop("open_department_id"), **department)

    # ---- approvals ---------------------------------------------------------------------------------
    def add_approval(self, approval_code: str, approval_name: str = "", nodes: list[dict[str, Any]] | None = None,
                     tenant_key: str = "") -> dict[str, Any]:
        """Add (or replace) an approval definition: nodes in order, each ``{"node_id"?, "custom_node_id"?,
        "name"?, "approvers": [open_id, ...], "if_empty"?: "pass"}`` (missing ids are generated; empty
        approvers must be given at create time, like Feishu's "发起人自选", unless ``if_empty`` is
        ``"pass"``: a node left without approvers is passed, Feishu's "审批人为空时：自动通过").
        ``tenant_key``: the organization the definition belongs to (its events name it; default the app's)."""
        chain = []
        for index, node in enumerate(nodes or [{"custom_node_id": "approver", "approvers": []}]):
            chain.append({"node_id": node.get("node_id") or stable_id("", approval_code, str(index)),
                          "custom_node_id": node.get("custom_node_id", ""), "name": node.get("name", ""),
                          "approvers": list(node.get("approvers", []))})
            if node.get("if_empty") == "pass":  # Feishu's "审批人为空时：自动通过"
                chain[-1]["if_empty"] = "pass"
        definition = {"approval_code": approval_code, "approval_name": approval_name or approval_code,
                      "nodes": chain}
        if tenant_key:
            definition["tenant_key"] = tenant_key
        self.approvals[approval_code] = definition
        return definition

    def clear(self) -> None:
        """Forget every user, chat, message, image and table (apps, tenants and tokens stay)."""
        self.users.clear()
        self.chats.clear()
        self.messages.clear()
        self.images.clear()
        self.files.clear()
        self.pins.clear()
        self.bitable.clear()
        self.approvals.clear()
        self.approval_instances.clear()
        self.approval_subscriptions.clear()
        self.departments.clear()
        self.idempotency.clear()

    def save(self, path: Path) -> None:
        """Write the state atomically (a crash mid-write leaves the previous file intact)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def load(self, path: Path) -> None:
        self.merge_json(json.loads(Path(path).read_text(encoding="utf-8")))


# Bitable date cells are milliseconds at midnight in the table's timezone; seeds speak of China's days.
SEED_ZONE = "Asia/Shanghai"


def _seed_cell(value: Any, today: date | None) -> Any:
    if isinstance(value, dict) and set(value) == {"$days_from_today"}:
        from datetime import datetime, timedelta
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(SEED_ZONE)
        day = (today or datetime.now(zone).date()) + timedelta(days=int(value["$days_from_today"]))
        return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)
    return value


def _seed_record(raw: dict[str, Any], today: date | None = None) -> dict[str, Any]:
    fields = raw["fields"] if "fields" in raw else {k: v for k, v in raw.items() if k != "record_id"}
    rid = raw.get("record_id") or raw.get("id") or record_id()
    ts = raw.get("created_time") or now_ms()
    cells = {name: _seed_cell(cell, today) for name, cell in fields.items()}
    return {"record_id": rid, "fields": cells, "created_time": ts,
            "last_modified_time": raw.get("last_modified_time") or ts}


def sample_state() -> dict[str, Any]:
    """A small seed: a few hospital staff and a device ledger table, for ``engine dev`` and examples."""
    return {
        "version": STATE_VERSION,
        "users": [
            {"open_id": "ou_standin_zhang", "user_id": "zhangwei", "name": "张伟", "email": "zhang.wei@example.org",
             "mobile": "+8613800000001", "department": "设备科"},
            {"open_id": "ou_standin_li", "user_id": "lina", "name": "李娜", "email": "li.na@example.org",
             "mobile": "+8613800000002", "department": "检验科"},
            {"open_id": "ou_standin_wang", "user_id": "wangfang", "name": "王芳", "email": "wang.fang@example.org",
             "mobile": "+8613800000003", "department": "护理部"},
        ],
        "bitable": {
            "bascnStandinDevices": {
                "tblDevices": {
                    "name": "设备台账",
                    "records": [
                        {"record_id": "recStandin001",
                         "fields": {"设备编号": "DEV-001", "名称": "输液泵", "科室": "ICU", "状态": "在用"}},
                        {"record_id": "recStandin002",
                         "fields": {"设备编号": "DEV-002", "名称": "心电监护仪", "科室": "急诊", "状态": "在用"}},
                    ],
                }
            }
        },
    }
