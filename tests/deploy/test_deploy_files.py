"""The documented deployment (deploy/): the compose file follows the Compose Specification and runs two
workers and two ingresses on one config; that config is valid and its secrets are all in the env example;
the systemd units start existing engine commands on the same config."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML  # comes with check-jsonschema

from engine.cli import cli
from engine.config import load_config
from engine.plugins import load_plugins
from engine.runtime.server import VISIBILITY_MAX_PAGE_SIZE
from plugins.device_calibration.listing import LISTING_PAGE_SIZE

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG_IN_CONTAINER = "/etc/engine/engine.toml"


def compose() -> dict[str, Any]:
    return YAML(typ="safe").load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def engine_command(argv: list[str]) -> click.Command:
    """The engine subcommand ``argv`` runs (``engine <name> ...``), checked against the CLI itself."""
    assert Path(argv[0]).name == "engine", argv
    with click.Context(cli) as ctx:
        command = cli.get_command(ctx, argv[1])
    assert command is not None, f"no engine command {argv[1]!r}"
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {arg for arg in argv[2:] if arg.startswith("--")} <= options | {"--config"}, argv
    return command


def test_compose_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_two_workers_and_two_ingresses_on_one_config_and_one_temporal() -> None:
    services = compose()["services"]
    workers = [s for s in services.values() if s.get("command", [None, None])[1:2] == ["worker"]]
    ingresses = [s for s in services.values() if s.get("command", [None, None])[1:2] == ["ingress"]]
    assert sum(s.get("deploy", {}).get("replicas", 1) for s in workers) == 2
    assert len(ingresses) == 2
    host_ports = set()
    for service in workers + ingresses:
        engine_command(service["command"])
        argv = service["command"]
        assert argv[argv.index("--config") + 1] == CONFIG_IN_CONTAINER
        assert f"./engine.toml:{CONFIG_IN_CONTAINER}:ro" in service["volumes"]
        assert service["env_file"] == "engine.env"
        assert "temporal" in service["depends_on"]
        host_ports |= {port.rsplit(":", 1)[0] for port in service.get("ports", [])}
    assert len(host_ports) == 2  # each ingress on a port of its own, for the load balancer in front
    temporal = services["temporal"]["environment"]
    assert temporal["DB"].startswith("postgres") and temporal["POSTGRES_SEEDS"] in services


def test_temporal_serves_the_listing_its_pages_of_cycles() -> None:
    """The dynamic config the compose file mounts lets a reconciliation list cycles as many to a page as it
    asks for (Temporal's default cap is 1,000), the same cap the embedded server sets itself."""
    temporal = compose()["services"]["temporal"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in temporal["volumes"]}
    path = "/etc/temporal/" + temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert mounted[path] == "./temporal-dynamic-config.yaml"
    values = YAML(typ="safe").load((DEPLOY / "temporal-dynamic-config.yaml").read_text(encoding="utf-8"))
    assert values["frontend.visibilityMaxPageSize"] == [{"value": LISTING_PAGE_SIZE}]
    assert VISIBILITY_MAX_PAGE_SIZE == LISTING_PAGE_SIZE


def test_the_deployed_config_is_valid_and_every_secret_is_in_the_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    example = (DEPLOY / "engine.env.example").read_text(encoding="utf-8")
    listed = re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE)
    for name in listed:  # placeholders of the right shape: the production checks refuse short ones
        monkeypatch.setenv(name, "k1:" + "A" * 43 + "=" if name == "ENGINE_PAYLOAD_KEYS" else "x" * 40)
    config = load_config(DEPLOY / "engine.toml", load_plugins().scenarios)
    assert config.temporal.mode == "cluster" and config.feishu is not None
    assert config.temporal.address.split(":")[0] in compose()["services"]
    referenced = set(config.secret_variables())
    referenced |= {ref.env for ref in (config.feishu.app_secret, config.feishu.verification_token,
                                       config.feishu.encrypt_key, config.temporal.payload_keys) if ref is not None}
    assert referenced <= set(listed), f"not in engine.env.example: {sorted(referenced - set(listed))}"


@pytest.mark.parametrize("unit", ["engine-worker@.service", "engine-ingress@.service"])
def test_systemd_units_start_an_engine_command_on_the_deployed_config(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / unit, encoding="utf-8")
    service = parser["Service"]
    argv = shlex.split(service["ExecStart"].replace("%i", "8081"))
    engine_command(argv)
    assert argv[argv.index("--config") + 1] == CONFIG_IN_CONTAINER
    assert service["EnvironmentFile"] == "/etc/engine/engine.env"
    assert service["Restart"] == "always" and service["User"] != "root"
    assert parser["Install"]["WantedBy"] == "engine.target"
    target = (DEPLOY / "systemd" / "engine.target").read_text(encoding="utf-8")
    assert unit.split("@")[0] in target
