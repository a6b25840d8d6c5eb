"""Faults detected, not typed: Alertmanager's webhook over real HTTP opens one ticket per alert fingerprint,
adds to it while it fires, closes it when it resolves, and refuses bad tokens and bodies with a short 4xx."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest
from repair_helpers import IT_TECH, SEED, SETTINGS, rows, state

import plugins.repair as repair
from engine.runtime.server import free_port
from engine.secrets import derive
from engine.testing import moments
from plugins.repair.alerts import TOKEN_PURPOSE

SECRET = "test-repair-alert-secret-0123456789abcdef"
FINGERPRINT = "1a30ba71cca2921f"


def token(secret: str = SECRET, org: str = "acme") -> str:
    """What Alertmanager is configured with (``engine repair alert-token`` prints it)."""
    return derive(secret.encode(), org=org, scenario="repair", name="alerts", purpose=TOKEN_PURPOSE).hex()


@pytest.fixture(autouse=True)
def alert_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPAIR_ALERT_SECRET", SECRET)
    monkeypatch.delenv("REPAIR_ALERT_SECRET_PREVIOUS", raising=False)


def payload(status: str, starts: datetime, *, ends: str = "0001-01-01T00:00:00Z", value: str = "95") -> dict[str, Any]:
    """A version 4 webhook body as Alertmanager sends it (one alert of a group)."""
    alert = {"status": status, "labels": {"alertname": "PrinterOffline", "instance": "prn-0012:9100",
                                          "location": "门诊2楼收费处", "severity": "warning"},
             "annotations": {"summary": "收费处打印机离线", "description": f"toner {value}%"},
             "startsAt": starts.isoformat(), "endsAt": ends,
             "generatorURL": "http://prometheus.example.org/graph", "fingerprint": FINGERPRINT}
    return {"receiver": "repair", "status": status, "alerts": [alert], "groupLabels": {"alertname": "PrinterOffline"},
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
            "externalURL": "http://alertmanager.example.org", "version": "4",
            "groupKey": '{}:{alertname="PrinterOffline"}', "truncatedAlerts": 0}


async def test_an_alert_opens_feeds_and_resolves_one_ticket(scenario_harness: Any) -> None:
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env, \
            env.serve_plugin_routes(free_port()) as base, httpx.AsyncClient(timeout=10) as http:
        url = f"{base}/repair/alertmanager/acme"
        env.standin.state.merge_json(SEED)
        starts = await env.begin_at(moments.ordinary_workday())
        auth = {"Authorization": f"Bearer {token()}"}
        first = await http.post(url, json=payload("firing", starts), headers=auth)
        assert first.status_code == 200 and first.json() == {"tickets": [f"BX-AL-{FINGERPRINT.upper()}"]}
        await env.settle()
        number = first.json()["tickets"][0]
        ticket = await state(env, number)
        assert (ticket.source, ticket.category, ticket.alert_count, ticket.status) == ("alert", "it", 1, "dispatched")
        assert ticket.location == "门诊2楼收费处" and ticket.reported_at == starts
        (card,) = env.messages(to=IT_TECH)
        assert "收费处打印机离线" in str(card.card)
        # the same body again (a retry) adds nothing; a changed one, while it still fires, adds to the ticket
        await http.post(url, json=payload("firing", starts), headers=auth)
        again = await http.post(url, json=payload("firing", starts, value="99"), headers=auth)
        assert again.status_code == 200
        await env.settle()
        assert (await state(env, number)).alert_count == 2 and len(env.messages(to=IT_TECH)) == 1
        await env.advance(minutes=20)
        resolved = await http.post(url, json=payload("resolved", starts, ends=(await env.now()).isoformat()),
                                   headers=auth)
        assert resolved.status_code == 200 and resolved.json() == {"tickets": [number]}
        await env.settle()
        closed = await state(env, number)
        assert closed.status == "closed" and closed.done_at is not None
        assert "告警已恢复" in env.messages(to=IT_TECH)[-1].text
        (row,) = rows(env)
        assert row["工单号"] == number and row["状态"] == "已关闭" and row["来源"] == "监控告警"
        # a late or repeated "resolved" opens nothing
        late = await http.post(url, json=payload("resolved", starts), headers=auth)
        assert late.status_code == 200
        await env.settle()
        assert len(rows(env)) == 1 and len(env.messages(to=IT_TECH)) == 2


async def test_bad_tokens_and_bodies_are_refused_short(scenario_harness: Any) -> None:
    async with scenario_harness({"repair": repair}, org_settings={"repair": SETTINGS}) as env, \
            env.serve_plugin_routes(free_port()) as base, httpx.AsyncClient(timeout=10) as http:
        url = f"{base}/repair/alertmanager/acme"
        env.standin.state.merge_json(SEED)
        starts = await env.now()
        good = {"Authorization": f"Bearer {token()}"}
        body = payload("firing", starts)
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {token()}"},
                        {"Authorization": f"Bearer {token(org='other')}"},
                        {"Authorization": f"Bearer {token('another-secret-0123456789abcdefghij')}"}):
            answer = await http.post(url, json=body, headers=headers)
            assert answer.status_code == 401 and answer.json() == {"error": "bad token"}, headers
        assert (await http.post(url.replace("/acme", "/nobody"), json=body, headers=good)).status_code == 404
        for bad in (b"{not json", json.dumps({**body, "version": "3"}).encode(),
                    json.dumps({**body, "alerts": []}).encode(),
                    json.dumps({**body, "alerts": [{**body["alerts"][0], "fingerprint": "../x"}]}).encode(),
                    json.dumps({**body, "alerts": [{**body["alerts"][0], "status": "pending"}]}).encode()):
            answer = await http.post(url, content=bad, headers={**good, "Content-Type": "application/json"})
            assert answer.status_code == 400 and len(answer.text) < 200, bad
        huge = await http.post(url, content=b" " * (2 << 20), headers=good)
        assert huge.status_code == 413

        async def chunked() -> Any:  # no Content-Length: the size is found while reading
            for _ in range(40):
                yield b" " * 65536

        assert (await http.post(url, content=chunked(), headers=good)).status_code == 413
        await env.settle()
        assert env.messages() == [] and rows(env) == []  # nothing reached a workflow


def test_the_command_prints_the_token_alertmanager_presents(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from engine.cli import cli

    config = tmp_path / "engine.toml"
    config.write_text('[organizations.acme]\nplugins = ["repair"]\n', encoding="utf-8")
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", "repair")
    result = CliRunner().invoke(cli, ["--config", str(config), "repair", "alert-token", "--org", "acme"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == token()
    other = CliRunner().invoke(cli, ["--config", str(config), "repair", "alert-token", "--org", "nobody"])
    assert other.exit_code == 2 and "does not run the repair scenario" in other.output
