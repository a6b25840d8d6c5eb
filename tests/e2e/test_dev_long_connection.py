"""`engine dev --long-connection` as a subprocess: events reach the engine over the stand-in's long connection."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_dev_restart import DevProcess, dev_setup, wait_for  # noqa: F401 (dev_setup is a fixture)

from engine.codec import EncryptionCodec, dev_keys
from engine.runtime.worker import connect

pytestmark = pytest.mark.e2e


async def test_engine_dev_takes_events_over_the_long_connection(
        dev_setup: tuple[Path, Path, dict[str, int]]) -> None:  # noqa: F811
    config, state, ports = dev_setup
    standin = f"http://127.0.0.1:{ports['standin']}"
    dev = DevProcess(config, state, ports)
    dev.args.append("--long-connection")
    dev.start()
    try:
        assert any("long connection" in line for line in dev.output), "".join(dev.output)
        async with httpx.AsyncClient(timeout=30) as http:
            # no webhook URL is registered in this mode: the stand-in pushes over the open long connection,
            # which lark-oapi's thread may still be opening (the stand-in refuses to push until it is open)
            pushed: dict = {}

            async def pushed_over_the_connection() -> bool:
                nonlocal pushed
                pushed = (await http.post(f"{standin}/_standin/deliver", json={
                    "message": {"text": "hello", "chat_id": "oc_lc", "sender_open_id": "ou_alice"},
                    "wait": True, "retries": []})).json()
                return "via" in pushed

            await wait_for(pushed_over_the_connection)
            assert pushed["via"] == "long_connection" and pushed["acknowledged"], pushed
            assert [a["code"] for a in pushed["attempts"]] == [200]
            # engine dev encrypts what it stores in Temporal with its own key
            client = await connect(f"127.0.0.1:{ports['temporal']}", "default",
                                   codec=EncryptionCodec.from_text(dev_keys(state)))
            handle = client.get_workflow_handle("acme:echo:oc_lc")

            async def pinged_once() -> bool:
                return (await handle.query("state"))["count"] == 1

            await wait_for(pinged_once)
    finally:
        assert dev.stop() == 0, "".join(dev.output)
    assert "Traceback" not in "".join(dev.output), "".join(dev.output)
