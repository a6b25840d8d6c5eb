"""The payload codec: what Temporal stores is ciphertext; the engine, the replayer and the codec endpoint read it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
from codec_workflows import NoteHolder, PatientNote, file_note
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from engine.codec import (
    COMPRESSION,
    ENCODING,
    KEY_ID,
    CodecKeyError,
    EncryptionCodec,
    PayloadDecryptionError,
    new_key_text,
    parse_keys,
)
from engine.codec_server import build_codec_app
from engine.config import ConfigError, parse_config
from engine.runtime.server import free_port
from engine.runtime.worker import connect, workflow_runner
from engine.testing.replay import assert_replays

# an invented patient; ASCII so it can be searched for in any encoding of the history
NAME = "Quentin Testpatient"
SUMMARY = "severe pneumonia, ventilated, SpO2 below 88 percent at night"
TOKEN = "codec-test-token-7f3a"
TEMPORAL = str(Path(sys.executable).parent / "temporal")
ENGINE = str(Path(sys.executable).parent / "engine")


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


# -------------------------------------------------------------------------------------- the codec itself


async def test_round_trip_hides_the_text_and_compresses_only_what_is_large() -> None:
    codec = EncryptionCodec.from_text(new_key_text("k1"))
    small, large = plain(NAME), plain(SUMMARY * 200)
    sealed = await codec.encode([small, large])
    assert all(p.metadata["encoding"] == ENCODING and p.metadata[KEY_ID] == b"k1" for p in sealed)
    assert all(NAME.encode() not in p.data and b"pneumonia" not in p.data for p in sealed)
    assert COMPRESSION not in sealed[0].metadata
    assert sealed[1].metadata[COMPRESSION] == b"zlib" and len(sealed[1].data) < len(large.data) // 10
    assert await codec.decode(sealed) == [small, large]
    # a fresh nonce per payload: the same value never gives the same ciphertext
    assert (await codec.encode([small]))[0].data != sealed[0].data


async def test_the_newest_key_encrypts_and_every_key_decrypts() -> None:
    old = new_key_text("2026a")
    before = EncryptionCodec.from_text(old)
    after = EncryptionCodec.from_text(f"{new_key_text('2026b')},{old}")
    sealed_before = await before.encode([plain(NAME)])
    sealed_after = await after.encode([plain(NAME)])
    assert sealed_after[0].metadata[KEY_ID] == b"2026b"
    assert await after.decode(sealed_before) == [plain(NAME)]
    with pytest.raises(PayloadDecryptionError, match="'2026b', which is not configured"):
        await before.decode(sealed_after)


async def test_plain_payloads_pass_through_and_tampering_is_refused() -> None:
    codec = EncryptionCodec.from_text(new_key_text("k1"))
    assert await codec.decode([plain(NAME)]) == [plain(NAME)]
    sealed = (await codec.encode([plain(SUMMARY * 100)]))[0]
    flipped = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadDecryptionError, match="altered data"):
        await codec.decode([flipped])
    unflagged = Payload(metadata={k: v for k, v in sealed.metadata.items() if k != COMPRESSION}, data=sealed.data)
    with pytest.raises(PayloadDecryptionError):  # the compression flag is authenticated too
        await codec.decode([unflagged])
    other = EncryptionCodec.from_text(new_key_text("k1"))  # same id, different key
    with pytest.raises(PayloadDecryptionError, match="wrong key"):
        await other.decode([sealed])


@pytest.mark.parametrize(("text", "problem"), [
    ("", "no key is given"),
    ("nokey", "has no id"),
    ("k1:not base64!", "not valid base64"),
    (f"k1:{base64.b64encode(b'short').decode()}", "5 bytes, not 32"),
    (f"{new_key_text('k1')},{new_key_text('k1')}", "appears twice"),
])
def test_unusable_keys_are_named(text: str, problem: str) -> None:
    with pytest.raises(CodecKeyError, match=problem):
        parse_keys(text)


def test_config_check_names_file_key_and_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    document = {"temporal": {"payload_keys": {"env": "TEST_PAYLOAD_KEYS"},
                             "codec_server": {"token": {"env": "TEST_CODEC_TOKEN"}}},
                "organizations": {"acme": {}}}
    monkeypatch.delenv("TEST_PAYLOAD_KEYS", raising=False)
    monkeypatch.setenv("TEST_CODEC_TOKEN", "")
    with pytest.raises(ConfigError) as unset:
        parse_config(document, tmp_path / "engine.toml", {})
    text = str(unset.value)
    assert "engine.toml: temporal.payload_keys: expected environment variable TEST_PAYLOAD_KEYS to be set" in text
    assert "python -m engine.codec" in text
    assert "temporal.codec_server.token" in text
    monkeypatch.setenv("TEST_PAYLOAD_KEYS", "k1:AAAA")
    monkeypatch.setenv("TEST_CODEC_TOKEN", TOKEN)
    with pytest.raises(ConfigError) as short:
        parse_config(document, tmp_path / "engine.toml", {})
    assert [issue.key for issue in short.value.issues] == ["temporal.payload_keys"]
    assert "'k1' is 3 bytes, not 32" in str(short.value) and "AAAA" not in str(short.value)
    monkeypatch.setenv("TEST_PAYLOAD_KEYS", new_key_text("k1"))
    assert parse_config(document, tmp_path / "engine.toml", {}).temporal.payload_keys is not None


# ---------------------------------------------------------------------------- against the real dev server


@pytest.fixture
async def codec_endpoint() -> AsyncIterator[tuple[str, EncryptionCodec]]:
    codec = EncryptionCodec.from_text(new_key_text("k1"))
    port = free_port()
    app = build_codec_app(codec, TOKEN, ["http://127.0.0.1:8233"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", codec
    finally:
        server.should_exit = True
        await task


async def _run(args: list[str]) -> tuple[int, str, str]:
    """A CLI command, awaited (the codec endpoint it calls serves from this test's event loop)."""
    process = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


def _raw(history: WorkflowHistory) -> bytes:
    """The history's events as stored (protobuf): payload data as it is, not base64 as in its JSON."""
    return b"".join(event.SerializeToString() for event in history.events)


def _stored_bytes(state_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in state_dir.glob("temporal.sqlite*"))


async def _run_holder(client: Client, workflow_id: str, queue: str,
                      while_open: Callable[[], Awaitable[None]] | None = None) -> list[PatientNote]:
    async with Worker(client, task_queue=queue, workflows=[NoteHolder], activities=[file_note],
                      workflow_runner=workflow_runner()):
        handle = await client.start_workflow(NoteHolder.run, "icu", id=workflow_id, task_queue=queue)
        filed = await handle.execute_update(NoteHolder.save, PatientNote(bed="12", name=NAME, summary=SUMMARY))
        assert filed == "filed 12"
        assert [n.name for n in await handle.query(NoteHolder.entries)] == [NAME]
        if while_open is not None:
            await while_open()
        await handle.signal(NoteHolder.close)
        return await handle.result()


async def test_histories_hold_no_patient_text_and_authorised_operators_can_read_them(
        dev_server, codec_endpoint: tuple[str, EncryptionCodec], tmp_path: Path) -> None:
    url, codec = codec_endpoint
    client = await connect(dev_server.address, "default", codec=codec)
    workflow_id = f"acme:codec-test:{uuid.uuid4().hex[:8]}"
    config = tmp_path / "engine.toml"
    config.write_text(f'[temporal]\naddress = "{dev_server.address}"\n\n[organizations.acme]\n', encoding="utf-8")

    async def engine_without_the_key() -> None:
        code, out, err = await _run([ENGINE, "workflows", "show", workflow_id, "--query", "entries",
                                     "--config", str(config)])
        assert code == 2 and "its data cannot be decrypted" in out + err and NAME not in out + err, out + err

    notes = await _run_holder(client, workflow_id, f"codec-{uuid.uuid4().hex[:6]}", engine_without_the_key)
    assert notes == [PatientNote(bed="12", name=NAME, summary=SUMMARY)]  # round trip through the codec

    # without the codec: the history (update, activity input and result, completion) shows no patient text
    reader = await connect(dev_server.address, "default")
    history = await reader.get_workflow_handle(workflow_id).fetch_history()
    raw = _raw(history)
    assert NAME.encode() not in raw and b"pneumonia" not in raw
    assert b"binary/encrypted" in raw
    # nor does Temporal's database
    await asyncio.sleep(0.5)
    assert NAME.encode() not in _stored_bytes(dev_server.state_dir)

    # the replayer reads the encrypted history with the codec
    await assert_replays(WorkflowHistory.from_json(workflow_id, history.to_json()), [NoteHolder], codec=codec)

    # the codec endpoint decodes for the token, and refuses without it
    sealed = [e.activity_task_scheduled_event_attributes.input.payloads[0] for e in history.events
              if e.HasField("activity_task_scheduled_event_attributes")]
    body = json_format.MessageToJson(Payloads(payloads=sealed))
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(f"{url}/decode", content=body, headers={"content-type": "application/json"})
        assert refused.status_code == 401 and NAME not in refused.text
        wrong = await http.post(f"{url}/decode", content=body, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        decoded = await http.post(f"{url}/decode", content=body, headers={"authorization": f"Bearer {TOKEN}"})
        assert decoded.status_code == 200
        data = json_format.Parse(decoded.text, Payloads()).payloads[0].data
        assert json.loads(data) == {"bed": "12", "name": NAME, "summary": SUMMARY}
        # the Web UI's capability URL: the token as the first path segment, under the namespace prefix
        by_path = await http.post(f"{url}/{TOKEN}/default/decode", content=body)
        assert by_path.status_code == 200 and NAME in base64.b64decode(
            json.loads(by_path.text)["payloads"][0]["data"]).decode()
        # a browser's preflight from the UI's origin gets CORS; another origin gets none
        preflight = await http.options(f"{url}/decode", headers={"origin": "http://127.0.0.1:8233",
                                                                  "access-control-request-method": "POST"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        foreign = await http.options(f"{url}/decode", headers={"origin": "http://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers
        encoded = await http.post(f"{url}/encode", content=json_format.MessageToJson(Payloads(payloads=[plain(NAME)])),
                                  headers={"authorization": f"Bearer {TOKEN}"})
        assert encoded.status_code == 200 and NAME not in encoded.text
        garbage = await http.post(f"{url}/decode", content=b"{not json", headers={"authorization": f"Bearer {TOKEN}"})
        assert garbage.status_code == 400

    # the temporal CLI: opaque without the endpoint, readable through it
    show = [TEMPORAL, "workflow", "show", "-w", workflow_id, "--address", dev_server.address, "--detailed"]
    code, out, err = await _run(show)
    assert code == 0, err
    assert NAME not in out
    code, out, err = await _run([*show, "--codec-endpoint", url, "--codec-auth", f"Bearer {TOKEN}"])
    assert code == 0, err
    assert NAME in out and "pneumonia" in out
    _, out, _ = await _run([*show, "--codec-endpoint", url])
    assert NAME not in out


async def test_without_the_codec_the_same_workflow_is_stored_in_plain_text(dev_server) -> None:
    """The control: the checks above would see the patient text if it were stored."""
    client = await connect(dev_server.address, "default")
    workflow_id = f"acme:codec-test-plain:{uuid.uuid4().hex[:8]}"
    await _run_holder(client, workflow_id, f"plain-{uuid.uuid4().hex[:6]}")
    assert NAME.encode() in _raw(await client.get_workflow_handle(workflow_id).fetch_history())
    await asyncio.sleep(0.5)
    assert NAME.encode() in _stored_bytes(dev_server.state_dir)


# ----------------------------------------------------------------------------------------- the command line


def _cli(args: list[str]) -> tuple[int, str]:
    from click.testing import CliRunner

    from engine.cli import CliState, cli
    from engine.plugins import load_plugins

    state = CliState()
    state._plugins = load_plugins(modules={}, entry_points=False)
    result = CliRunner().invoke(cli, args, obj=state)
    return result.exit_code, result.output


def test_config_check_and_codec_server_name_a_bad_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text('[temporal]\npayload_keys = { env = "TEST_PAYLOAD_KEYS" }\n\n[organizations.acme]\n',
                    encoding="utf-8")
    monkeypatch.setenv("TEST_PAYLOAD_KEYS", "k1:c2hvcnQ=")
    code, out = _cli(["config", "check", str(path)])
    assert code == 1
    assert f"{path}: temporal.payload_keys: expected usable keys in TEST_PAYLOAD_KEYS, found key 'k1' is 5 bytes" in out
    assert "c2hvcnQ=" not in out
    monkeypatch.setenv("TEST_PAYLOAD_KEYS", new_key_text("k1"))
    code, out = _cli(["config", "check", str(path)])
    assert code == 0, out
    code, out = _cli(["--config", str(path), "codec-server"])  # no token: refused before it listens
    assert code == 2 and "temporal.codec_server.token is not set" in out


def test_config_check_warns_when_production_stores_plain_payloads(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text('[feishu]\napp_id = "cli_x"\napp_secret = { env = "TEST_APP_SECRET" }\n\n[organizations.acme]\n',
                    encoding="utf-8")
    monkeypatch.setenv("TEST_APP_SECRET", "s")
    code, out = _cli(["config", "check", str(path)])
    assert "warning:" in out and "temporal.payload_keys is not set" in out, (code, out)


def test_a_damaged_dev_key_file_is_named_with_its_path(tmp_path: Path) -> None:
    from engine.codec import DEV_KEYS_FILE, dev_keys, payload_codec

    config = parse_config({"organizations": {"acme": {}}}, tmp_path / "engine.toml", {})
    assert payload_codec(config) is None  # no keys and no dev key: plain payloads
    state = config.state_dir()
    first = dev_keys(state)
    assert dev_keys(state) == first and (state / DEV_KEYS_FILE).stat().st_mode & 0o077 == 0
    codec = payload_codec(config)
    assert codec is not None and codec.key_id == "dev1"
    (state / DEV_KEYS_FILE).write_text("dev1:broken", encoding="utf-8")
    with pytest.raises(CodecKeyError, match=f"{state / DEV_KEYS_FILE}: key 'dev1' is not valid base64"):
        payload_codec(config)
