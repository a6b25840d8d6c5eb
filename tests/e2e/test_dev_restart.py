"""`engine dev` as a subprocess: an event through the ingress starts a workflow; the workflow survives
a stop and a restart of the embedded Temporal server on the same state file."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format

from engine.codec import EncryptionCodec, dev_keys
from engine.feishu.standin import FeishuStandIn, message_event
from engine.runtime.server import free_port
from engine.runtime.worker import connect

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ENGINE = str(Path(sys.executable).parent / "engine")


class DevProcess:
    def __init__(self, config: Path, state: Path, ports: dict[str, int]):
        self.args = [ENGINE, "dev", "--config", str(config), "--state-dir", str(state),
                     "--port", str(ports["ingress"]), "--temporal-port", str(ports["temporal"]),
                     "--standin-port", str(ports["standin"])]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "engine"),
                    "ENGINE_PLUGIN_MODULES": "sample_plugins:EchoPlugin", "ENGINE_LOAD_PLUGINS": "EchoPlugin"}
        for key in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_BASE_URL"):
            self.env.pop(key, None)
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    def start(self, timeout: float = 120) -> None:
        self.process = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, start_new_session=True)
        assert self.process.stdout is not None
        import time

        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.output.append(line)
            if "engine dev is running" in line:
                return
            if time.monotonic() > deadline:
                break
        raise AssertionError("engine dev did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        return code


@pytest.fixture
def dev_setup(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, int]]]:
    ports = {"ingress": free_port(), "temporal": free_port(), "standin": free_port()}
    config = tmp_path / "engine.toml"
    # no Temporal address in the config: the commands find dev's port (and its payload key) by themselves
    config.write_text("""
state_dir = "state"

[organizations.acme]
name = "Acme Hospital"
tenant_key = "t_standin"
plugins = ["echo"]
""", encoding="utf-8")
    yield config, tmp_path / "state", ports


async def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def test_workflow_survives_a_restart_of_engine_dev(dev_setup: tuple[Path, Path, dict[str, int]]) -> None:
    config, state, ports = dev_setup
    ingress = f"http://127.0.0.1:{ports['ingress']}"
    feishu = FeishuStandIn()  # only to push events the way Feishu does (signed, same verification token)
    dev = DevProcess(config, state, ports)
    dev.start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{ingress}/healthz")).status_code == 200
            ui = await http.get(f"http://127.0.0.1:{ports['temporal'] + 1000}/")
            assert ui.status_code == 200

            delivery = await feishu.deliver_event(f"{ingress}/feishu/events", "im.message.receive_v1",
                                                  message_event("hello", "oc_e2e", "ou_alice"), retries=())
            assert delivery.acknowledged, delivery
            client = await connect(f"127.0.0.1:{ports['temporal']}", "default",
                                   codec=EncryptionCodec.from_text(dev_keys(state)))
            handle = client.get_workflow_handle("acme:echo:oc_e2e")

            async def pinged_once() -> bool:
                return (await handle.query("state"))["count"] == 1

            await wait_for(pinged_once)

            async def bot_answered() -> bool:
                outbox = (await http.get(f"http://127.0.0.1:{ports['standin']}/_standin/outbox")).json()
                return any("hello" in (m["text"] or "") for m in outbox)

            await wait_for(bot_answered)

            listed = subprocess.run([ENGINE, "workflows", "list", "--config", str(config), "--org", "acme"],
                                    capture_output=True, text=True, env=dev.env, timeout=60)
            assert "acme:echo:oc_e2e" in listed.stdout, listed.stdout + listed.stderr
            by_plugin = subprocess.run([ENGINE, "workflows", "list", "--config", str(config), "--plugin", "echo"],
                                       capture_output=True, text=True, env=dev.env, timeout=60)
            assert "acme:echo:oc_e2e" in by_plugin.stdout, by_plugin.stdout + by_plugin.stderr
            # a reader that stops early (`| head`) is no error
            piped = subprocess.run(f"'{ENGINE}' workflows list --config '{config}' | head -c 1", shell=True,
                                   capture_output=True, text=True, env=dev.env, timeout=60)
            assert "Error" not in piped.stderr and "Traceback" not in piped.stderr, piped.stderr
            shown = subprocess.run([ENGINE, "workflows", "show", "acme:echo:oc_e2e", "--config", str(config)],
                                   capture_output=True, text=True, env=dev.env, timeout=60)
            assert "status   running" in shown.stdout and "count: 1" in shown.stdout, shown.stdout + shown.stderr
            session = state / "dev-session.json"
            assert session.stat().st_mode & 0o077 == 0  # the stand-in's app secret: its owner's only

            # the workflow's data is encrypted; dev's codec endpoint decodes it for its token only
            history = await handle.fetch_history()
            stored = b"".join(event.SerializeToString() for event in history.events)
            assert b"hello" not in stored and b"binary/encrypted" in stored
            endpoint = next(line.split()[2] for line in dev.output if line.strip().startswith("codec endpoint"))
            sealed = next(e.workflow_execution_signaled_event_attributes.input for e in history.events
                          if e.HasField("workflow_execution_signaled_event_attributes"))
            body = json_format.MessageToJson(sealed)
            assert (await http.post(f"{endpoint}/decode", content=body)).status_code == 401
            token = (state / "codec-token").read_text().strip()
            decoded = await http.post(f"{endpoint}/decode", content=body, headers={"authorization": f"Bearer {token}"})
            assert decoded.status_code == 200 and "hello" in json.dumps(
                [base64.b64decode(p["data"]).decode() for p in decoded.json()["payloads"]], ensure_ascii=False)
    finally:
        assert dev.stop() == 0, "".join(dev.output)

    assert (state / "temporal.sqlite").exists()
    dev.start()
    try:
        client = await connect(f"127.0.0.1:{ports['temporal']}", "default",
                                   codec=EncryptionCodec.from_text(dev_keys(state)))
        handle = client.get_workflow_handle("acme:echo:oc_e2e")
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        assert (await handle.query("state"))["pings"] == ["hello"]
        delivery = await feishu.deliver_event(f"http://127.0.0.1:{ports['ingress']}/feishu/events",
                                              "im.message.receive_v1",
                                              message_event("again", "oc_e2e", "ou_alice"), retries=())
        assert delivery.acknowledged

        async def pinged_twice() -> bool:
            return (await handle.query("state"))["pings"] == ["hello", "again"]

        await wait_for(pinged_twice)
        # as a user, from the command line: the bot's answer is printed
        sent = subprocess.run([ENGINE, "send", "message", "third", "--chat", "oc_e2e", "--from", "ou_alice",
                               "--config", str(config)], capture_output=True, text=True, env=dev.env, timeout=60)
        assert sent.returncode == 0 and "收到第 3 条：third" in sent.stdout, sent.stdout + sent.stderr
        # an engine event, raised from the command line
        raised = subprocess.run([ENGINE, "send", "event", "echo.ping", '{"chat": "oc_e2e", "text": "fourth", '
                                 '"sender": "ou_alice"}', "--config", str(config)],
                                capture_output=True, text=True, env=dev.env, timeout=60)
        assert raised.returncode == 0 and "1 action(s)" in raised.stdout, raised.stdout + raised.stderr

        async def pinged_four_times() -> bool:
            return (await handle.query("state"))["count"] == 4

        await wait_for(pinged_four_times)

        async def fourth_answered() -> bool:  # its signal handler done: the stop below completes the workflow
            async with httpx.AsyncClient(timeout=10) as http:
                outbox = (await http.get(f"http://127.0.0.1:{ports['standin']}/_standin/outbox")).json()
            return any("fourth" in (m["text"] or "") for m in outbox)

        await wait_for(fourth_answered)
        nobody = subprocess.run([ENGINE, "send", "event", "nobody.listens", "--config", str(config)],
                                capture_output=True, text=True, env=dev.env, timeout=60)
        assert nobody.returncode == 2 and "no enabled scenario" in nobody.stderr, nobody.stderr
        await handle.execute_update("stop")
        shown = subprocess.run([ENGINE, "workflows", "show", "acme:echo:oc_e2e", "--config", str(config)],
                               capture_output=True, text=True, env=dev.env, timeout=60)
        # a completed workflow shows how it ended, readable
        assert shown.returncode == 0 and "status   completed" in shown.stdout, shown.stdout + shown.stderr
        assert "pings:" in shown.stdout and "- again" in shown.stdout and "- third" in shown.stdout, shown.stdout
    finally:
        assert dev.stop() == 0, "".join(dev.output)
    assert not (state / "dev-session.json").exists()

    # with dev stopped, a command says what to start instead of a transport error
    listed = subprocess.run([ENGINE, "workflows", "list", "--config", str(config)], capture_output=True, text=True,
                            env=dev.env, timeout=60)
    assert listed.returncode == 2 and "cannot reach Temporal at 127.0.0.1:7233" in listed.stderr, listed.stderr
    assert "make dev" in listed.stderr and "tonic" not in listed.stderr
