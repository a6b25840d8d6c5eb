"""Bitable records on the stand-in through lark-oapi: search, paging, idempotent and conflicting writes."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import lark_oapi as lark
import pytest
from lark_oapi.api.bitable.v1 import (
    AppTableRecord,
    BatchCreateAppTableRecordRequest,
    BatchCreateAppTableRecordRequestBody,
    BatchUpdateAppTableRecordRequest,
    BatchUpdateAppTableRecordRequestBody,
    Condition,
    CreateAppTableRecordRequest,
    FilterInfo,
    GetAppTableRecordRequest,
    ListAppTableRecordRequest,
    SearchAppTableRecordRequest,
    SearchAppTableRecordRequestBody,
    Sort,
    UpdateAppTableRecordRequest,
)

from engine.feishu.standin import FeishuStandIn

APP_TOKEN, TABLE = "bascnLedger", "tblDevices"


@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}", bitable_write_latency=0.0)
    await s.start()
    yield s
    await s.stop()


def client_for(s: FeishuStandIn) -> lark.Client:
    return (lark.Client.builder().app_id(s.app_id).app_secret(s.app_secret).domain(s.base_url)
            .log_level(lark.LogLevel.ERROR).build())


async def call(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def batch_create(records: list[dict[str, Any]], client_token: str | None = None
                 ) -> BatchCreateAppTableRecordRequest:
    req = BatchCreateAppTableRecordRequest.builder().app_token(APP_TOKEN).table_id(TABLE)
    if client_token:
        req = req.client_token(client_token)
    return req.request_body(BatchCreateAppTableRecordRequestBody.builder().records(
        [AppTableRecord.builder().fields(f).build() for f in records]).build()).build()


def search(conditions: list[Condition], *, conjunction: str = "and", page_size: int = 20,
           page_token: str | None = None, field_names: list[str] | None = None,
           sort: list[Sort] | None = None) -> SearchAppTableRecordRequest:
    body = SearchAppTableRecordRequestBody.builder().filter(
        FilterInfo.builder().conjunction(conjunction).conditions(conditions).build())
    if field_names:
        body = body.field_names(field_names)
    if sort:
        body = body.sort(sort)
    req = SearchAppTableRecordRequest.builder().app_token(APP_TOKEN).table_id(TABLE).page_size(page_size)
    if page_token:
        req = req.page_token(page_token)
    return req.request_body(body.build()).build()


def cond(field: str, operator: str, *value: str) -> Condition:
    return Condition.builder().field_name(field).operator(operator).value(list(value)).build()


DEVICES = [
    {"编号": f"DEV-{i:03d}", "名称": name, "科室": dept, "到期天数": days,
     "状态": status, "标签": tags, "负责人": [{"id": owner}]}
    for i, (name, dept, days, status, tags, owner) in enumerate([
        ("输液泵", "ICU", 5, "在用", ["急救"], "ou_zhang"),
        ("心电监护仪", "急诊", 40, "在用", ["急救", "监护"], "ou_li"),
        ("呼吸机", "ICU", 12, "维修", ["急救"], "ou_zhang"),
        ("除颤仪", "急诊", 2, "在用", [], "ou_wang"),
        ("血压计", "门诊", 90, "报废", ["常规"], "ou_li"),
    ], start=1)
]


async def test_batch_create_search_filter_and_paging(standin: FeishuStandIn) -> None:
    client = client_for(standin)
    created = await call(client.bitable.v1.app_table_record.batch_create, batch_create(DEVICES * 10))
    assert created.code == 0 and len(created.data.records) == 50
    assert all(r.record_id.startswith("rec") for r in created.data.records)

    icu_in_use = await call(client.bitable.v1.app_table_record.search, search(
        [cond("科室", "is", "ICU"), cond("状态", "isNot", "报废"), cond("到期天数", "isLess", "30")],
        field_names=["编号", "到期天数"]))
    assert icu_in_use.code == 0 and icu_in_use.data.total == 20
    assert {tuple(sorted(i.fields)) for i in icu_in_use.data.items} == {("到期天数", "编号")}

    either = await call(client.bitable.v1.app_table_record.search, search(
        [cond("名称", "contains", "仪"), cond("标签", "contains", "常规")], conjunction="or"))
    assert either.data.total == 30  # 心电监护仪, 除颤仪 (contain 仪) + 血压计 (常规)

    empty_tags = await call(client.bitable.v1.app_table_record.search, search([cond("标签", "isEmpty")]))
    owned = await call(client.bitable.v1.app_table_record.search, search([cond("负责人", "is", "ou_zhang")]))
    greater = await call(client.bitable.v1.app_table_record.search, search([cond("到期天数", "isGreater", "12")]))
    assert (empty_tags.data.total, owned.data.total, greater.data.total) == (10, 20, 20)

    # paging: 50 records, 20 a page
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await call(client.bitable.v1.app_table_record.search, search([], page_size=20, page_token=token))
        pages += 1
        seen += [i.record_id for i in page.data.items]
        if not page.data.has_more:
            break
        token = page.data.page_token
    assert pages == 3 and len(seen) == len(set(seen)) == 50

    ordered = await call(client.bitable.v1.app_table_record.search, search(
        [cond("科室", "is", "急诊")], sort=[Sort.builder().field_name("到期天数").desc(True).build()], page_size=3))
    assert [i.fields["到期天数"] for i in ordered.data.items] == [40, 40, 40]
    too_big_page = await call(client.bitable.v1.app_table_record.search, search([], page_size=501))
    assert too_big_page.code == 1254000


async def test_client_token_replays_and_500_limit(standin: FeishuStandIn) -> None:
    client = client_for(standin)
    first = await call(client.bitable.v1.app_table_record.batch_create, batch_create(DEVICES[:2], "tok-1"))
    replay = await call(client.bitable.v1.app_table_record.batch_create, batch_create(DEVICES[:2], "tok-1"))
    assert first.code == replay.code == 0
    assert [r.record_id for r in replay.data.records] == [r.record_id for r in first.data.records]
    assert len(standin.state.table(APP_TOKEN, TABLE)["records"]) == 2

    too_many = await call(client.bitable.v1.app_table_record.batch_create, batch_create([{"编号": "x"}] * 501))
    assert too_many.code == 1254104
    exactly = await call(client.bitable.v1.app_table_record.batch_create, batch_create([{"编号": "x"}] * 500))
    assert exactly.code == 0 and len(standin.state.table(APP_TOKEN, TABLE)["records"]) == 502


async def test_single_record_create_get_update_list(standin: FeishuStandIn) -> None:
    client = client_for(standin)
    created = await call(client.bitable.v1.app_table_record.create, CreateAppTableRecordRequest.builder()
                         .app_token(APP_TOKEN).table_id(TABLE).client_token("one")
                         .request_body(AppTableRecord.builder().fields({"编号": "DEV-9", "状态": "在用"}).build())
                         .build())
    rid = created.data.record.record_id
    updated = await call(client.bitable.v1.app_table_record.update, UpdateAppTableRecordRequest.builder()
                         .app_token(APP_TOKEN).table_id(TABLE).record_id(rid)
                         .request_body(AppTableRecord.builder().fields({"状态": "维修", "备注": "送修"}).build())
                         .build())
    assert updated.code == 0 and updated.data.record.fields == {"编号": "DEV-9", "状态": "维修", "备注": "送修"}
    got = await call(client.bitable.v1.app_table_record.get, GetAppTableRecordRequest.builder()
                     .app_token(APP_TOKEN).table_id(TABLE).record_id(rid).build())
    assert got.data.record.fields["状态"] == "维修"
    missing = await call(client.bitable.v1.app_table_record.get, GetAppTableRecordRequest.builder()
                         .app_token(APP_TOKEN).table_id(TABLE).record_id("recMissing").build())
    assert missing.code == 1254043
    listed = await call(client.bitable.v1.app_table_record.list, ListAppTableRecordRequest.builder()
                        .app_token(APP_TOKEN).table_id(TABLE).page_size(10).build())
    assert listed.code == 0 and listed.data.total == 1 and not listed.data.has_more

    bad_update = await call(client.bitable.v1.app_table_record.batch_update, BatchUpdateAppTableRecordRequest
                            .builder().app_token(APP_TOKEN).table_id(TABLE).request_body(
                                BatchUpdateAppTableRecordRequestBody.builder().records([
                                    AppTableRecord.builder().record_id(rid).fields({"状态": "在用"}).build(),
                                    AppTableRecord.builder().record_id("recNope").fields({"状态": "x"}).build(),
                                ]).build()).build())
    assert bad_update.code == 1254043
    assert standin.state.table(APP_TOKEN, TABLE)["records"][rid]["fields"]["状态"] == "维修"  # all or nothing


async def test_concurrent_writes_to_one_table_conflict() -> None:
    s = FeishuStandIn(app_id=f"cli_{uuid.uuid4().hex[:16]}", bitable_write_latency=0.3)
    await s.start()
    try:
        client = client_for(s)
        await call(client.bitable.v1.app_table_record.list, ListAppTableRecordRequest.builder()
                   .app_token(APP_TOKEN).table_id(TABLE).build())  # fetch the token once, up front
        barrier = threading.Barrier(3)

        def write(n: int, table: str = TABLE) -> int:
            barrier.wait()
            req = BatchCreateAppTableRecordRequest.builder().app_token(APP_TOKEN).table_id(table) \
                .request_body(BatchCreateAppTableRecordRequestBody.builder().records(
                    [AppTableRecord.builder().fields({"n": n}).build()]).build()).build()
            return client.bitable.v1.app_table_record.batch_create(req).code

        codes = await asyncio.gather(asyncio.to_thread(write, 1), asyncio.to_thread(write, 2),
                                     asyncio.to_thread(write, 3, "tblOther"))
        assert sorted(codes[:2]) == [0, 1254291]  # one writer per table
        assert codes[2] == 0  # another table is not blocked
        assert len(s.state.table(APP_TOKEN, TABLE)["records"]) == 1
    finally:
        await s.stop()


def test_seed_date_cells_relative_to_today() -> None:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from engine.feishu.standin.state import SEED_ZONE, State

    zone = ZoneInfo(SEED_ZONE)
    state = State()
    before = datetime.now(zone).date()  # the seed reads the wall clock: midnight may pass while it does
    state.merge_json({"bitable": {"bascnS": {"tblS": {"records": [
        {"record_id": "rec1", "fields": {"到期": {"$days_from_today": -3}, "备注": {"text": "kept as is"}}}]}}}})
    after = datetime.now(zone).date()
    fields = state.table("bascnS", "tblS")["records"]["rec1"]["fields"]  # type: ignore[index]
    day = datetime.fromtimestamp(fields["到期"] / 1000, zone)
    assert day.date() in {before - timedelta(days=3), after - timedelta(days=3)} and (day.hour, day.minute) == (0, 0)
    assert fields["备注"] == {"text": "kept as is"}
