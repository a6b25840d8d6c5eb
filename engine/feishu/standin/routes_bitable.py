"""Bitable (多维表格) records: search, list, get, create, update, delete and their batch forms.

Two Feishu rules the engine must live with are enforced here: at most 500 records per batch call
(1254104), and no concurrent writes to one table (1254291). Every write holds its table for
``FeishuStandIn.bitable_write_latency`` seconds, so overlapping writes are observable in tests.
``client_token`` makes a write idempotent: the same token replays the first result.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from .base import Ctx, Endpoint, Reply, fail, ok
from .bitable_query import FilterError, matches, project, sort_records
from .state import now_ms, record_id

BATCH_LIMIT = 500
PAGE_MAX = 500
CLIENT_TOKEN_TTL = 3600

# Bitable answers its business errors with HTTP 200 and a non-zero code
WRONG_REQUEST = 1254000
WRONG_BODY = 1254001
FILTER_INVALID = 1254018
BASE_NOT_FOUND = 1254040
TABLE_NOT_FOUND = 1254041
RECORD_NOT_FOUND = 1254043
BATCH_TOO_LARGE = 1254104
WRITE_CONFLICT = 1254291


def _view(rec: dict[str, Any], names: list[str] | None = None) -> dict[str, Any]:
    return {"record_id": rec["record_id"], "id": rec["record_id"], "fields": project(rec["fields"], names)}


def _table_for_read(ctx: Ctx) -> dict[str, Any] | Reply:
    table = ctx.state.table(ctx.params["app_token"], ctx.params["table_id"])
    if table is None:
        if ctx.standin.strict_ids:
            if ctx.params["app_token"] not in ctx.state.bitable:
                return fail(200, BASE_NOT_FOUND, "BaseTokenNotFound")
            return fail(200, TABLE_NOT_FOUND, "TableIdNotFound")
        return {"name": ctx.params["table_id"], "records": {}}  # lenient: an unknown table reads as empty
    return table


def _page(ctx: Ctx, body: dict[str, Any]) -> tuple[int, int] | Reply:
    raw_size = ctx.query.get("page_size", body.get("page_size", 20))
    raw_token = ctx.query.get("page_token", body.get("page_token")) or "0"
    try:
        size, offset = int(raw_size), int(raw_token)
    except (TypeError, ValueError):
        return fail(200, WRONG_REQUEST, "WrongRequest: invalid page_size or page_token")
    if not 1 <= size <= PAGE_MAX:
        return fail(200, WRONG_REQUEST, f"WrongRequest: page_size must be 1..{PAGE_MAX}")
    return size, max(offset, 0)


def _paged(records: list[dict[str, Any]], size: int, offset: int, names: list[str] | None) -> dict[str, Any]:
    """One page of ``records``, each projected to ``names`` (only the page's: a 100,000-row table is read in
    200 pages, and projecting every row for each would make the reading quadratic)."""
    chunk = [_view(r, names) for r in records[offset:offset + size]]
    more = offset + size < len(records)
    return {"items": chunk, "has_more": more, "page_token": str(offset + size) if more else "",
            "total": len(records)}


async def search_records(ctx: Ctx) -> Reply:
    table = _table_for_read(ctx)
    if isinstance(table, Reply):
        return table
    body = ctx.json
    page = _page(ctx, body)
    if isinstance(page, Reply):
        return page
    condition = body.get("filter")
    try:
        hits = [r for r in table["records"].values() if matches(r["fields"], condition)] if condition \
            else list(table["records"].values())
    except FilterError as exc:
        return fail(200, FILTER_INVALID, f"InvalidFilter: {exc}")
    hits = sort_records(hits, body.get("sort"))
    return ok(_paged(hits, *page, body.get("field_names")))


async def list_records(ctx: Ctx) -> Reply:
    table = _table_for_read(ctx)
    if isinstance(table, Reply):
        return table
    page = _page(ctx, {})
    if isinstance(page, Reply):
        return page
    names = None
    if ctx.query.get("field_names"):
        try:
            names = json.loads(ctx.query["field_names"])
        except ValueError:
            return fail(200, WRONG_REQUEST, "WrongRequest: field_names must be a JSON array")
    return ok(_paged(list(table["records"].values()), *page, names))


async def get_record(ctx: Ctx) -> Reply:
    table = _table_for_read(ctx)
    if isinstance(table, Reply):
        return table
    rec = table["records"].get(ctx.params["record_id"])
    if rec is None:
        return fail(200, RECORD_NOT_FOUND, "RecordIdNotFound")
    return ok({"record": _view(rec)})


# ---- writes ------------------------------------------------------------------------------------------

async def _write(ctx: Ctx, op: str, apply: Callable[[dict[str, Any]], Reply]) -> Reply:
    """Run one write: client_token replay, the one-writer-per-table rule, latency, then ``apply``."""
    app_token, table_id = ctx.params["app_token"], ctx.params["table_id"]
    replay_key = None
    if ctx.query.get("client_token"):
        replay_key = f"bitable:{ctx.app_id}:{app_token}:{table_id}:{op}:{ctx.query['client_token']}"
        hit = ctx.state.remembered(replay_key)
        if hit is not None:
            return ok(hit)
    lock_key = (app_token, table_id)
    busy = ctx.standin.busy_tables
    if lock_key in busy:
        return fail(200, WRITE_CONFLICT, "Write conflict: another write to this table is in progress")
    busy.add(lock_key)
    try:
        if ctx.standin.bitable_write_latency > 0:
            await asyncio.sleep(ctx.standin.bitable_write_latency)
        table = ctx.state.table(app_token, table_id, create=True)
        assert table is not None
        reply = apply(table)
    finally:
        busy.discard(lock_key)
    if replay_key and reply.code == 0:
        ctx.state.remember(replay_key, reply.body["data"], CLIENT_TOKEN_TTL)
    return reply


def _new_record(fields: dict[str, Any]) -> dict[str, Any]:
    ts = now_ms()
    return {"record_id": record_id(), "fields": {k: v for k, v in fields.items() if v is not None},
            "created_time": ts, "last_modified_time": ts}


def _merge(rec: dict[str, Any], fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if value is None:  # null clears a cell
            rec["fields"].pop(name, None)
        else:
            rec["fields"][name] = value
    rec["last_modified_time"] = now_ms()


def _records_arg(ctx: Ctx) -> list[Any] | Reply:
    records = ctx.json.get("records")
    if not isinstance(records, list) or not records:
        return fail(200, WRONG_BODY, "WrongRequestBody: records must be a non-empty list")
    if len(records) > BATCH_LIMIT:
        return fail(200, BATCH_TOO_LARGE, f"RecordsExceedLimit: at most {BATCH_LIMIT} records per request "
                                          f"({len(records)} given)")
    return records


async def create_record(ctx: Ctx) -> Reply:
    fields = ctx.json.get("fields")
    if not isinstance(fields, dict):
        return fail(200, WRONG_BODY, "WrongRequestBody: fields must be an object")

    def apply(table: dict[str, Any]) -> Reply:
        rec = _new_record(fields)
        table["records"][rec["record_id"]] = rec
        return ok({"record": _view(rec)})

    return await _write(ctx, "create", apply)


async def update_record(ctx: Ctx) -> Reply:
    fields = ctx.json.get("fields")
    if not isinstance(fields, dict):
        return fail(200, WRONG_BODY, "WrongRequestBody: fields must be an object")

    def apply(table: dict[str, Any]) -> Reply:
        rec = table["records"].get(ctx.params["record_id"])
        if rec is None:
            return fail(200, RECORD_NOT_FOUND, "RecordIdNotFound")
        _merge(rec, fields)
        return ok({"record": _view(rec)})

    return await _write(ctx, "update", apply)


async def delete_record(ctx: Ctx) -> Reply:
    def apply(table: dict[str, Any]) -> Reply:
        if table["records"].pop(ctx.params["record_id"], None) is None:
            return fail(200, RECORD_NOT_FOUND, "RecordIdNotFound")
        return ok({"deleted": True, "record_id": ctx.params["record_id"]})

    return await _write(ctx, "delete", apply)


async def batch_create(ctx: Ctx) -> Reply:
    records = _records_arg(ctx)
    if isinstance(records, Reply):
        return records
    if not all(isinstance(r, dict) and isinstance(r.get("fields"), dict) for r in records):
        return fail(200, WRONG_BODY, "WrongRequestBody: every record needs a fields object")

    def apply(table: dict[str, Any]) -> Reply:
        created = [_new_record(r["fields"]) for r in records]
        for rec in created:
            table["records"][rec["record_id"]] = rec
        return ok({"records": [_view(r) for r in created]})

    return await _write(ctx, "batch_create", apply)


async def batch_update(ctx: Ctx) -> Reply:
    records = _records_arg(ctx)
    if isinstance(records, Reply):
        return records
    if not all(isinstance(r, dict) and r.get("record_id") and isinstance(r.get("fields"), dict)
               for r in records):
        return fail(200, WRONG_BODY, "WrongRequestBody: every record needs record_id and fields")

    def apply(table: dict[str, Any]) -> Reply:
        missing = [r["record_id"] for r in records if r["record_id"] not in table["records"]]
        if missing:  # all or nothing, like Feishu
            return fail(200, RECORD_NOT_FOUND, f"RecordIdNotFound: {missing[:5]}")
        for r in records:
            _merge(table["records"][r["record_id"]], r["fields"])
        return ok({"records": [_view(table["records"][r["record_id"]]) for r in records]})

    return await _write(ctx, "batch_update", apply)


async def batch_delete(ctx: Ctx) -> Reply:
    records = _records_arg(ctx)
    if isinstance(records, Reply):
        return records

    def apply(table: dict[str, Any]) -> Reply:
        out = [{"deleted": table["records"].pop(str(rid), None) is not None, "record_id": str(rid)}
               for rid in records]
        return ok({"records": out})

    return await _write(ctx, "batch_delete", apply)


_T = "/open-apis/bitable/v1/apps/{app_token}/tables/{table_id}/records"
_W = "bitable.record.write"
ENDPOINTS = [
    Endpoint("POST", _T + "/search", search_records),
    Endpoint("GET", _T, list_records),
    Endpoint("POST", _T, create_record, api=_W),
    Endpoint("POST", _T + "/batch_create", batch_create, api=_W),
    Endpoint("POST", _T + "/batch_update", batch_update, api=_W),
    Endpoint("POST", _T + "/batch_delete", batch_delete, api=_W),
    Endpoint("GET", _T + "/{record_id}", get_record),
    Endpoint("PUT", _T + "/{record_id}", update_record, api=_W),
    Endpoint("DELETE", _T + "/{record_id}", delete_record, api=_W),
]
