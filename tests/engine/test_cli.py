"""The command line: plugin listing, config check and show, template rendering, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sample_plugins import EchoPlugin, MisspeltPlugin, OtherPlugin

from engine.cli import CliState, cli
from engine.plugins import load_plugins

CONFIG = """
[organizations.rennuo]
name = "仁诺医疗"
tenant_key = "t_rennuo"
plugins = ["echo"]

[organizations.rennuo.settings.echo]
greeting = "您好"

[organizations.rennuo.sites.xian]
locale = "en_US"

[organizations.rennuo.sites.xian.settings.echo]
greeting = "你好，西安"

[organizations.neusoft]
plugins = ["echo", "other"]
"""


def run(args: list[str], plugins: dict[str, object] | None = None) -> tuple[int, str]:
    state = CliState()
    state._plugins = load_plugins(modules=plugins or {"echo": EchoPlugin(), "other": OtherPlugin()},
                                  entry_points=False)
    result = CliRunner().invoke(cli, args, obj=state)
    return result.exit_code, result.output


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_plugins_list_shows_versions_hooks_workflows_and_organizations(config: Path) -> None:
    code, out = run(["--config", str(config), "plugins", "list", "--json"],
                    {"echo": EchoPlugin(), "other": OtherPlugin(), "misspelt": MisspeltPlugin()})
    assert code == 0, out
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["echo"]["workflows"] == ["echo.Conversation", "echo.Timer"]
    assert rows["echo"]["organizations"] == ["neusoft", "rennuo"]
    assert "route_event" in rows["echo"]["hooks"]
    assert rows["other"]["organizations"] == ["neusoft"]
    assert "route_events" in rows["misspelt"]["error"]
    code, text = run(["--config", str(config), "plugins", "list"])
    assert "echo  v" in text and "organizations: neusoft, rennuo" in text


def test_config_check_ok_and_every_error_at_once(config: Path, tmp_path: Path) -> None:
    code, out = run(["config", "check", str(config)])
    assert code == 0 and "OK (2 organization(s), 1 site(s))" in out
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace('greeting = "您好"', 'greeting = 3\ncolour = "red"')
                   .replace('plugins = ["echo", "other"]', 'plugins = ["echo", "nope"]'), encoding="utf-8")
    code, out = run(["config", "check", str(bad)])
    assert code == 1
    assert f"{bad}: organizations.rennuo.settings.echo.greeting: expected" in out
    assert "organizations.rennuo.settings.echo.colour: expected no such key" in out
    assert "organizations.neusoft.plugins[1]" in out
    # the site override of a key the group keeps is reported too (echo lets sites override greeting only)
    assert "3 problem(s) found" in out


def test_config_check_warns_of_dates_without_an_official_calendar(config: Path) -> None:
    # Frozen: whether a warning shows depends on the date (2026-11-30: 2027 enters the next 12 months).
    with freeze_time("2026-11-30 01:00:00"):
        code, out = run(["config", "check", str(config)])
    assert code == 0, out  # a warning, not a failure
    assert "OK (2 organization(s), 1 site(s))" in out
    for org in ("rennuo", "neusoft"):
        assert (f"warning: organizations.{org}: no official holiday calendar for 2027-01-01..2027-11-29 "
                "(chinese-calendar ") in out
        assert f"list the days off and make-up workdays in organizations.{org}.holidays" in out
    with freeze_time("2026-01-01 01:00:00"):  # the next 12 months are all in 2026
        code, out = run(["config", "check", str(config)])
    assert code == 0 and "warning" not in out, out


def test_config_show_prints_effective_settings_per_site(config: Path) -> None:
    code, out = run(["--config", str(config), "config", "show", "--org", "rennuo", "--site", "xian"])
    assert code == 0, out
    shown = json.loads(out)
    assert shown["plugins"]["echo"]["greeting"] == "你好，西安"
    assert shown["locale"] == "en_US"  # the site's own locale, not the group's
    code, out = run(["--config", str(config), "config", "show", "--org", "rennuo"])
    assert json.loads(out)["plugins"]["echo"]["greeting"] == "您好" and json.loads(out)["locale"] == "zh_CN"
    code, out = run(["--config", str(config), "config", "show", "--org", "nobody"])
    assert code == 2 and "no organization 'nobody'" in out and "hint: known: rennuo, neusoft" in out


def test_templates_render_with_sample_or_given_context(tmp_path: Path) -> None:
    code, out = run(["templates", "render", "echo", "pong", "--locale", "en_US"])
    assert code == 0 and out.strip() == "Got #1: hi"
    context = tmp_path / "c.json"
    context.write_text('{"text": "病危 3 床", "count": 7}', encoding="utf-8")
    code, out = run(["templates", "render", "echo", "pong", "--context", str(context)])
    assert out.strip() == "收到第 7 条：病危 3 床"
    code, out = run(["templates", "render", "echo", "nope"])
    assert code == 2 and "Error:" in out and "hint:" in out and "Traceback" not in out
    # the name as `templates list` prints it works too
    listed = run(["templates", "list"])[1].split()
    assert "echo:pong" in listed
    code, out = run(["templates", "render", "echo:pong", "--locale", "en_US"])
    assert code == 0 and out.strip() == "Got #1: hi"
    code, out = run(["templates", "render", "echo"])
    assert code == 2 and "PLUGIN:NAME" in out


def test_a_broken_config_is_one_clear_error_not_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[organizations.a\n", encoding="utf-8")
    code, out = run(["--config", str(broken), "config", "show", "--org", "a"])
    assert code == 2
    assert "(syntax)" in out and "hint: run `engine config check FILE`" in out and "Traceback" not in out


def test_config_check_refuses_a_cron_temporal_cannot_run(tmp_path: Path) -> None:
    from plugins import asset_loan

    path = tmp_path / "crons.toml"
    path.write_text('[organizations.h1]\nplugins = ["asset_loan"]\n\n'
                    '[organizations.h1.settings.asset_loan]\nsummary_cron = "0 9 L * *"\n', encoding="utf-8")
    code, out = run(["config", "check", str(path)], {"asset_loan": asset_loan})
    assert code == 1
    assert (f"{path}: organizations.h1.settings.asset_loan.summary_cron: expected a cron that Temporal schedules "
            "run as written") in out
    assert "found '0 9 L * *': day-of-month 'L': 'L' (last day) is refused by Temporal" in out
    assert "(use 28-31 and let the workflow go on only on the month's last day)" in out
    path.write_text(path.read_text(encoding="utf-8").replace("0 9 L * *", "0 9 28-31 * *"), encoding="utf-8")
    code, out = run(["config", "check", str(path)], {"asset_loan": asset_loan})
    assert code == 0, out
