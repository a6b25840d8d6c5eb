"""The outbound Feishu edge against the local stand-in over real HTTP, through lark-oapi.

Each test registers its own app in the stand-in (lark keeps process-wide state keyed by app_id, and the
stand-in's rate limits and dedupe are per app), so tests never share tokens or budgets.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from engine.config import EngineConfig, parse_config
from engine.feishu import requests as rq
from engine.feishu.activities import FeishuActivities, message_uuid
from engine.feishu.client import FeishuClient, derived_token, key_text
from engine.feishu.errors import CODE_BAD_RESPONSE, CODE_TIMEOUT, FeishuError
from engine.feishu.ratelimit import MESSAGE_SEND, RateLimiter
from engine.feishu.standin import Fault, FeishuStandIn
from engine.templates import TemplateEngine

_app_ids = itertools.count(1)


# -------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
async def standin() -> AsyncIterator[FeishuStandIn]:
    server = FeishuStandIn(strict_ids=True, bitable_write_latency=0.0)
    await server.start()
    yield server
    await server.stop()


def new_app(standin: FeishuStandIn) -> tuple[str, str]:
    app_id = f"cli_outbound_{next(_app_ids)}"
    secret = f"secret-{app_id}"
    standin.add_app(app_id, secret, tenant_key=f"t_{app_id}")
    return app_id, secret


@pytest.fixture
async def client(standin: FeishuStandIn) -> AsyncIterator[FeishuClient]:
    app_id, secret = new_app(standin)
    feishu = FeishuClient(standin.base_url, app_id, secret, timeout=5.0,
                          limiter=RateLimiter.for_feishu(messages_per_second=200, messages_per_second_per_chat=50,
                                                         calls_per_second=200))
    yield feishu
    await feishu.aclose()


@pytest.fixture
def templates(tmp_path: Path) -> TemplateEngine:
    root = tmp_path / "plugin_templates"
    for locale, hello, title in (("zh_CN", "你好，{{ name }}！", "提醒"), ("en_US", "Hello, {{ name }}!", "Reminder")):
        folder = root / locale
        folder.mkdir(parents=True)
        (folder / "hello.j2").write_text(hello, encoding="utf-8")
        card = {"schema": "2.0", "header": {"title": {"tag": "plain_text", "content": title}},
                "body": {"elements": [{"tag": "markdown", "content": "{{ device | json_str }}"}]}}
        (folder / "notice.card.j2").write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")
        (folder / "broken.j2").write_text("{{ missing_variable }}", encoding="utf-8")
    return TemplateEngine({"demo": root})


@pytest.fixture
def config(tmp_path: Path) -> EngineConfig:
    return parse_config({"organizations": {"north": {"name": "North Hospital", "locale": "zh_CN",
                                                     "timezone": "Asia/Shanghai"},
                                           "west": {"locale": "en_US"}}},
                        tmp_path / "engine.toml", {})


@pytest.fixture
def activities(config: EngineConfig, client: FeishuClient, templates: TemplateEngine) -> FeishuActivities:
    return FeishuActivities(config, client, templates)


# -------------------------------------------------------------------------------------------- messages
async def test_send_text_and_card_in_the_orgs_locale(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    standin.add_user("ou_alice", name="Alice")
    text = await activities.send_message(rq.SendMessage(
        org="north", to=rq.Recipient(id="ou_alice"), template="demo:hello", context={"name": "Alice"},
        idempotency_key="wf-1:hello"))
    card = await activities.send_message(rq.SendMessage(
        org="north", to=rq.Recipient(id="ou_alice"), template="demo:notice.card", context={"device": 'CT "3"'},
        idempotency_key="wf-1:card", locale="en_US"))

    sent = standin.messages(to="ou_alice")
    assert [m.message_id for m in sent] == [text.message_id, card.message_id]
    assert sent[0].msg_type == "text" and sent[0].text == "你好，Alice！"
    assert sent[1].msg_type == "interactive"
    assert sent[1].card is not None and sent[1].card["header"]["title"]["content"] == "Reminder"
    assert text.chat_id == sent[0].chat_id


async def test_resend_with_the_same_key_sends_once(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    standin.add_user("ou_bob", name="Bob")
    request = rq.SendMessage(org="west", to=rq.Recipient(id="ou_bob"), template="demo:hello",
                             context={"name": "Bob"}, idempotency_key="wf-2:step-3")
    first = await activities.send_message(request)
    again = await activities.send_message(request)  # a retried activity
    other = await activities.send_message(request.model_copy(update={"idempotency_key": "wf-2:step-4"}))

    assert again.message_id == first.message_id
    assert other.message_id != first.message_id
    assert len(standin.messages(to="ou_bob")) == 2
    uuids = {c.body["uuid"] for c in standin.calls_to("/open-apis/im/v1/messages", "POST")}
    assert message_uuid("west", "wf-2:step-3") in uuids
    assert all(len(u) <= 50 for u in uuids)


async def test_reply_goes_to_the_parent_message(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    standin.add_user("ou_carol")
    parent = await activities.send_message(rq.SendMessage(
        org="west", to=rq.Recipient(id="ou_carol"), template="demo:hello", context={"name": "C"},
        idempotency_key="wf-3:a"))
    reply = await activities.send_message(rq.SendMessage(
        org="west", reply_to=parent.message_id, template="demo:hello", context={"name": "again"},
        idempotency_key="wf-3:b"))
    replies = [m for m in standin.messages() if m.reply_to == parent.message_id]
    assert [m.message_id for m in replies] == [reply.message_id]
    assert reply.chat_id == parent.chat_id


async def test_update_card_replaces_the_card(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    standin.add_user("ou_dan")
    sent = await activities.send_message(rq.SendMessage(
        org="west", to=rq.Recipient(id="ou_dan"), template="demo:notice.card", context={"device": "MRI"},
        idempotency_key="wf-4:card"))
    await activities.update_card(rq.UpdateCard(org="west", message_id=sent.message_id,
                                               template="demo:notice.card", context={"device": "MRI done"}))
    (message,) = standin.messages(to="ou_dan")
    assert message.updated and "MRI done" in message.raw


async def test_template_error_is_not_retryable(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activities.send_message(rq.SendMessage(
            org="north", to=rq.Recipient(id="ou_x"), template="demo:broken", idempotency_key="k"))
    assert caught.value.type == "TemplateError" and caught.value.non_retryable
    assert "demo:broken" in str(caught.value)
    assert standin.calls_to("/open-apis/im/v1/messages") == []


async def test_send_message_as_a_temporal_activity(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    standin.add_user("ou_eve")
    env = ActivityEnvironment()
    request = rq.SendMessage(org="north", to=rq.Recipient(id="ou_eve"), template="demo:hello",
                             context={"name": "Eve"}, idempotency_key="wf-5:temporal")
    result = await env.run(activities.send_message, request)
    assert isinstance(result, rq.SentMessage)
    assert standin.messages(to="ou_eve")[0].text == "你好，Eve！"

    with pytest.raises(ApplicationError) as caught:  # a bad chat id surfaces as a non-retryable failure
        await env.run(activities.send_message, request.model_copy(update={
            "to": rq.Recipient(id_type="chat_id", id="oc_missing"), "idempotency_key": "wf-5:bad"}))
    assert caught.value.non_retryable and caught.value.type == "FeishuError.230002"


def test_activities_are_all_registered(activities: FeishuActivities) -> None:
    names = {fn.__temporal_activity_definition.name for fn in activities.all()}  # type: ignore[attr-defined]
    expected = {getattr(rq, n) for n in dir(rq) if n.isupper() and isinstance(getattr(rq, n), str)
                and getattr(rq, n).startswith("engine.feishu.")}
    assert names == expected


# ----------------------------------------------------------------------------------------------- chats
async def test_create_chat_with_more_than_50_members_is_split(standin: FeishuStandIn,
                                                            activities: FeishuActivities) -> None:
    members = [f"ou_m{i:03d}" for i in range(120)]
    for open_id in members:
        standin.add_user(open_id)
    request = rq.CreateChat(org="north", name="Calibration CT-3 " + "x" * 80, owner_open_id="ou_m000",
                            member_open_ids=[*members, "ou_unknown"], idempotency_key="wf-6:chat")
    created = await activities.create_chat(request)
    again = await activities.create_chat(request)  # the retried activity reuses the chat (uuid)

    assert again.chat_id == created.chat_id
    assert created.invalid_member_ids == ["ou_unknown"]
    chat = standin.state.chats[created.chat_id]
    assert set(chat["_members"]) == set(members)
    assert len(chat["name"]) <= 60
    creates = [c for c in standin.calls_to("/open-apis/im/v1/chats", "POST") if c.path == "/open-apis/im/v1/chats"]
    assert len(creates[0].body["user_id_list"]) == 50
    adds = standin.calls_to(f"/open-apis/im/v1/chats/{created.chat_id}/members", "POST")
    assert all(len(c.body["id_list"]) <= 50 for c in adds)

    await activities.update_chat(rq.UpdateChat(org="north", chat_id=created.chat_id, name="CT-3 done"))
    assert standin.state.chats[created.chat_id]["name"] == "CT-3 done"
    invalid = await activities.add_chat_members(rq.AddChatMembers(org="north", chat_id=created.chat_id,
                                                                  member_open_ids=["ou_nobody"]))
    assert invalid == ["ou_nobody"]


async def test_pin_upload_lookup_and_bot_info(standin: FeishuStandIn, client: FeishuClient,
                                              activities: FeishuActivities) -> None:
    standin.add_user("ou_fay", email="fay@example.org", mobile="+8613800000001")
    sent = await activities.send_message(rq.SendMessage(
        org="west", to=rq.Recipient(id="ou_fay"), template="demo:hello", context={"name": "F"},
        idempotency_key="wf-7"))
    await activities.pin_message(rq.PinMessage(org="west", message_id=sent.message_id))
    assert any(p.get("message_id") == sent.message_id for p in standin.state.pins)

    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    key = await activities.upload_image(rq.UploadImage(org="west", content=png, filename="label.png"))
    assert key.startswith("img_")

    users = await activities.lookup_users(rq.LookupUsers(org="west", emails=["fay@example.org", "no@example.org"],
                                                         mobiles=["+8613800000001"]))
    found = {(u.email or u.mobile): u.open_id for u in users}
    assert found["fay@example.org"] == "ou_fay" and found["+8613800000001"] == "ou_fay"
    assert found.get("no@example.org") is None

    bot = await client.bot_info()
    assert bot.get("open_id", "").startswith("ou_")


async def test_get_user_known_unknown_and_failing(standin: FeishuStandIn, client: FeishuClient) -> None:
    """Regression (issue 9): asset_loan read profiles with its own HTTP call, past the limiter and the error
    mapping; an expired token there read as "unknown user". The client's get_user does it the engine's way."""
    standin.add_user("ou_gil", name="Gil")
    assert (await client.get_user("ou_gil") or {}).get("name") == "Gil"
    assert await client.get_user("ou_nobody") is None  # 41050: unknown or outside the contact scope
    standin.inject(Fault("expired_token", path_prefix="/open-apis/contact/"))
    assert (await client.get_user("ou_gil") or {}).get("name") == "Gil"  # token re-fetched, asked again
    standin.inject(Fault("server_error", status=502, path_prefix="/open-apis/contact/"))
    with pytest.raises(FeishuError) as failure:
        await client.get_user("ou_gil")
    assert failure.value.retryable


async def test_directory_departments_and_users_every_page(standin: FeishuStandIn, client: FeishuClient) -> None:
    """The contact directory over HTTP: a hospital's sub-departments (recursive) and each one's users,
    past Feishu's 50-a-page limit (120 people in one department)."""
    standin.state.add_department("od_a", name="A院")
    standin.state.add_department("od_a_ortho", name="骨科", parent_department_id="od_a")
    standin.state.add_department("od_a_ortho_ward", name="骨科病区", parent_department_id="od_a_ortho")
    standin.state.add_department("od_b", name="B院")
    for i in range(120):
        standin.add_user(f"ou_staff{i:03d}", name=f"员工{i}", department_ids=["od_a_ortho"])
    standin.add_user("ou_ward", name="病区护士", department_ids=["od_a_ortho_ward"])
    below = await client.list_departments("od_a")
    assert [d["name"] for d in below] == ["骨科", "骨科病区"]
    assert [d["name"] for d in await client.list_departments("od_a", recursive=False)] == ["骨科"]
    assert {d["open_department_id"] for d in await client.list_departments()} >= {"od_a", "od_b"}
    users = await client.users_in_department("od_a_ortho")
    assert len(users) == 120 and len({u["open_id"] for u in users}) == 120  # three pages, none twice
    assert [u["name"] for u in await client.users_in_department("od_a_ortho_ward")] == ["病区护士"]
    with pytest.raises(FeishuError):
        await client.users_in_department("od_unknown")


# --------------------------------------------------------------------------------------------- bitable
async def test_upsert_creates_then_updates(standin: FeishuStandIn, activities: FeishuActivities) -> None:
    standin.state.table("bascnDevices", "tblCal", create=True)
    ref = {"org": "north", "app_token": "bascnDevices", "table_id": "tblCal"}
    rows = [{"Device": f"CT-{i}", "Due": i} for i in range(7)]
    first = await activities.bitable_upsert(rq.BitableUpsert(**ref, key_field="Device", records=rows,
                                                             client_token="wf-8:sync-1"))
    assert (first.created, first.updated) == (7, 0)

    changed = [{"Device": "CT-1", "Due": 100}, {"Device": "CT-9", "Due": 9}]
    second = await activities.bitable_upsert(rq.BitableUpsert(**ref, key_field="Device", records=changed,
                                                              client_token="wf-8:sync-2"))
    assert (second.created, second.updated) == (1, 1)
    assert second.record_ids["CT-1"] == first.record_ids["CT-1"]

    records = await activities.bitable_search(rq.BitableSearch(**ref, page_size=3))  # paging: 3 pages
    assert len(records) == 8
    by_key = {key_text(r.fields["Device"]): r for r in records}
    assert by_key["CT-1"].fields["Due"] == 100

    got = await activities.bitable_get(rq.BitableGet(**ref, record_id=first.record_ids["CT-2"]))
    assert got.fields["Due"] == 2
    updated = await activities.bitable_update(rq.BitableUpdate(**ref, record_id=got.record_id, fields={"Due": 22}))
    assert updated.record_id == got.record_id


async def test_pages_come_one_at_a_time_and_an_early_stop_raises_nothing(standin: FeishuStandIn) -> None:
    """bitable_pages yields each page as it arrives (the next one already asked for); breaking off raises nothing."""
    app_id, secret = new_app(standin)
    client = FeishuClient(standin.base_url, app_id, secret)
    standin.state.table("bascnP", "tblP", create=True)
    try:
        await client.bitable_create("bascnP", "tblP", [{"Key": f"k{i}"} for i in range(7)], client_token="pages")
        sizes = [len(page) async for page in client.bitable_pages("bascnP", "tblP", page_size=3)]
        assert sizes == [3, 3, 1]
        pages = client.bitable_pages("bascnP", "tblP", page_size=3)
        async for page in pages:
            assert len(page) == 3
            break
        await pages.aclose()  # cancels the second page's fetch, already started: no error, the client stays usable
        assert len(await client.bitable_search("bascnP", "tblP", page_size=3)) == 7
    finally:
        await client.aclose()


async def test_retried_batch_after_a_timeout_creates_no_duplicates(standin: FeishuStandIn) -> None:
    """The first batch_create reaches Feishu but the answer is lost; the retried upsert must not duplicate."""
    app_id, secret = new_app(standin)
    client = FeishuClient(standin.base_url, app_id, secret, timeout=0.3)
    standin.state.table("bascnR", "tblR", create=True)
    try:
        standin.inject(Fault("slow", path_prefix="/open-apis/bitable/v1/apps/bascnR/tables/tblR/records/batch_create",
                             delay=0.6))
        rows = [{"Key": f"k{i}", "V": i} for i in range(5)]
        with pytest.raises(FeishuError) as caught:
            await client.bitable_upsert("bascnR", "tblR", "Key", rows, client_token="wf-9:sync")
        assert caught.value.code == CODE_TIMEOUT and caught.value.retryable
        await asyncio.sleep(0.6)  # the slow write completes on the server
        retried = await client.bitable_upsert("bascnR", "tblR", "Key", rows, client_token="wf-9:sync")
        assert len(await client.bitable_search("bascnR", "tblR")) == 5
        assert retried.created + retried.updated == 5

        # A batch retried with the same client token replays instead of creating again.
        batch = [{"Key": "x1"}, {"Key": "x2"}]
        once = await client.bitable_create("bascnR", "tblR", batch, client_token="wf-9:create")
        twice = await client.bitable_create("bascnR", "tblR", batch, client_token="wf-9:create")
        assert [r.record_id for r in once] == [r.record_id for r in twice]
        assert len(await client.bitable_search("bascnR", "tblR")) == 7
    finally:
        await client.aclose()


async def test_big_creates_are_chunked_by_500_with_a_token_each(standin: FeishuStandIn,
                                                                client: FeishuClient) -> None:
    rows = [{"N": i} for i in range(1203)]
    created = await client.bitable_create("bascnBig", "tblBig", rows, client_token="wf-10")
    assert len(created) == 1203
    calls = standin.calls_to("/open-apis/bitable/v1/apps/bascnBig/tables/tblBig/records/batch_create")
    assert [len(c.body["records"]) for c in calls] == [500, 500, 203]
    assert [c.query["client_token"] for c in calls] == [derived_token("wf-10", "create", i) for i in range(3)]


async def test_concurrent_upserts_to_one_table_are_serialized(standin: FeishuStandIn) -> None:
    standin.bitable_write_latency = 0.05  # long enough for unserialized writers to collide
    app_id, secret = new_app(standin)
    client = FeishuClient(standin.base_url, app_id, secret)
    other = FeishuClient(standin.base_url, app_id, secret)  # no shared lock: the control group
    standin.state.table("bascnS", "tblS", create=True)
    try:
        results = await asyncio.gather(*(
            client.bitable_upsert("bascnS", "tblS", "Key", [{"Key": f"w{i}-{j}"} for j in range(3)],
                                  client_token=f"wf-11:{i}")
            for i in range(6)))
        assert sum(r.created for r in results) == 18
        assert not [c for c in standin.calls if c.code == 1254291]

        # Without the per-table lock, two writers do collide: the stand-in enforces Feishu's rule.
        outcome = await asyncio.gather(
            client.bitable_create("bascnS", "tblS", [{"Key": "a"}], client_token="wf-11:a"),
            other.bitable_create("bascnS", "tblS", [{"Key": "b"}], client_token="wf-11:b"),
            return_exceptions=True)
        errors = [o for o in outcome if isinstance(o, FeishuError)]
        assert errors and errors[0].code == 1254291 and errors[0].retryable
    finally:
        await client.aclose()
        await other.aclose()


# ---------------------------------------------------------------------------------------------- errors
async def test_rate_limit_answer_is_retryable_with_feishus_delay(standin: FeishuStandIn,
                                                                 client: FeishuClient) -> None:
    standin.add_user("ou_rl")
    standin.inject(Fault("rate_limit", path_prefix="/open-apis/im/v1/messages", reset=3))
    with pytest.raises(FeishuError) as caught:
        await client.send_message("open_id", "ou_rl", "text", json.dumps({"text": "hi"}), "u-rl")
    error = caught.value
    assert (error.code, error.http_status, error.retry_after, error.retryable) == (99991400, 429, 3.0, True)
    assert "im.v1.message.create failed: code 99991400 (rate limited)" in str(error)
    app_error = error.to_application_error()
    assert app_error.type == "FeishuError.99991400" and not app_error.non_retryable
    assert app_error.next_retry_delay == timedelta(seconds=3)
    # the limiter now holds further sends back for the reset Feishu asked for
    state = client.limiter._states[MESSAGE_SEND]
    assert state.blocked_until >= client.limiter.clock.now() + 2.5


async def test_gateway_html_page_is_retryable(standin: FeishuStandIn, client: FeishuClient) -> None:
    standin.add_user("ou_gw")
    standin.inject(Fault("server_error", path_prefix="/open-apis/im/v1/messages", status=502, html=True))
    with pytest.raises(FeishuError) as caught:
        await client.send_message("open_id", "ou_gw", "text", json.dumps({"text": "hi"}), "u-gw")
    assert caught.value.code == CODE_BAD_RESPONSE and caught.value.retryable

    standin.inject(Fault("server_error", path_prefix="/open-apis/im/v1/messages", status=503, html=False))
    with pytest.raises(FeishuError) as caught:
        await client.send_message("open_id", "ou_gw", "text", json.dumps({"text": "hi"}), "u-gw")
    assert caught.value.http_status == 503 and caught.value.retryable
    # and the next attempt goes through, once (the uuid held)
    await client.send_message("open_id", "ou_gw", "text", json.dumps({"text": "hi"}), "u-gw")
    assert len(standin.messages(to="ou_gw")) == 1


async def test_expired_token_is_refreshed_transparently(standin: FeishuStandIn, client: FeishuClient) -> None:
    standin.add_user("ou_tok")
    await client.send_message("open_id", "ou_tok", "text", json.dumps({"text": "1"}), "u-t1")
    standin.expire_tokens()
    await client.send_message("open_id", "ou_tok", "text", json.dumps({"text": "2"}), "u-t2")
    standin.inject(Fault("expired_token", path_prefix="/open-apis/im/v1/messages"))
    await client.send_message("open_id", "ou_tok", "text", json.dumps({"text": "3"}), "u-t3")
    assert [m.text for m in standin.messages(to="ou_tok")] == ["1", "2", "3"]
    assert len(standin.calls_to("/open-apis/auth/v3/tenant_access_token")) == 3

    # An expiry that survives the re-fetch is reported (retryable), not looped on.
    standin.inject(Fault("expired_token", path_prefix="/open-apis/im/v1/messages", times=2))
    with pytest.raises(FeishuError) as caught:
        await client.send_message("open_id", "ou_tok", "text", json.dumps({"text": "4"}), "u-t4")
    assert caught.value.code == 99991663 and caught.value.retryable


async def test_bad_ids_are_not_retryable(standin: FeishuStandIn, client: FeishuClient) -> None:
    with pytest.raises(FeishuError) as caught:
        await client.send_message("chat_id", "oc_does_not_exist", "text", json.dumps({"text": "x"}), None)
    assert not caught.value.retryable and caught.value.to_application_error().non_retryable
    with pytest.raises(FeishuError) as caught:
        await client.bitable_get("bascnNone", "tblNone", "recNone")
    assert not caught.value.retryable


async def test_bad_credentials_and_unreachable_feishu(standin: FeishuStandIn) -> None:
    client = FeishuClient(standin.base_url, "cli_not_registered", "wrong", timeout=2.0)
    try:
        with pytest.raises(FeishuError) as caught:
            await client.send_message("open_id", "ou_x", "text", json.dumps({"text": "x"}), None)
        assert caught.value.call == "auth.v3.tenant_access_token.internal" and not caught.value.retryable
    finally:
        await client.aclose()
    dead = FeishuClient("http://127.0.0.1:9", "cli_dead", "s", timeout=1.0)
    try:
        with pytest.raises(FeishuError) as caught:
            await dead.bot_info()
        assert caught.value.retryable
    finally:
        await dead.aclose()


async def test_unknown_org_is_not_retryable(activities: FeishuActivities) -> None:
    with pytest.raises(ApplicationError) as caught:
        await activities.pin_message(rq.PinMessage(org="nowhere", message_id="om_x"))
    assert caught.value.type == "UnknownOrganization" and caught.value.non_retryable


def test_from_config_uses_the_environment(config: EngineConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEISHU_APP_ID", "cli_env")
    monkeypatch.setenv("FEISHU_APP_SECRET", "env-secret")
    monkeypatch.setenv("FEISHU_BASE_URL", "http://127.0.0.1:1234")
    client = FeishuClient.from_config(config)
    assert (client.base_url, client.app_id) == ("http://127.0.0.1:1234", "cli_env")
    monkeypatch.delenv("FEISHU_APP_ID")
    with pytest.raises(ValueError, match="FEISHU_APP_ID"):
        FeishuClient.from_config(config)


async def test_delete_chat_dissolves_once_and_a_retry_is_harmless(client: FeishuClient,
                                                                  standin: FeishuStandIn) -> None:
    created = await client.create_chat("临时群", "", None, [], uuid="dissolve-1")
    assert created.chat_id in standin.state.chats
    assert await client.delete_chat(created.chat_id) is True
    assert created.chat_id not in standin.state.chats
    assert await client.delete_chat(created.chat_id) is False


async def test_bot_info_refreshes_an_expired_token_and_retries_5xx(standin: FeishuStandIn,
                                                                   client: FeishuClient) -> None:
    """``/bot/v3/info`` is a raw lark request, whose failures lark leaves unparsed: its code is read from the
    body, so an expired token is re-fetched (not a start-up failure) and a JSON 5xx is retryable."""
    bot = (await client.bot_info())["open_id"]
    standin.inject(Fault("expired_token", path_prefix="/open-apis/bot/v3/info"))
    assert (await client.bot_info())["open_id"] == bot
    standin.inject(Fault("server_error", status=500, html=False, path_prefix="/open-apis/bot/v3/info"))
    with pytest.raises(FeishuError) as caught:
        await client.bot_info()
    assert caught.value.code == 1 and caught.value.http_status == 500 and caught.value.retryable
