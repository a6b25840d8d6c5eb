"""Config mistakes and broken templates are caught before anything runs, each with one clear error.

Every config file here has exactly one mistake; the real ``engine config check FILE`` (with the installed
plugins) must report exactly one problem, naming the file and the dotted key. tests/engine/test_config.py
checks the loader with all mistakes at once; this checks the command, one mistake at a time, including
the kinds it does not cover (a missing required key, a plugin's nested settings, the business clock,
schedules' cron expressions, a site's time zone).

A plugin whose template has a syntax error or an undefined variable makes ``engine worker`` and
``engine ingress`` refuse to start (and ``engine dev``), instead of failing when the message is due.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.runtime.server import free_port

pytestmark = [pytest.mark.reliability]

ENGINE = str(Path(sys.executable).parent / "engine")
BASE = """
[organizations.h]
tenant_key = "t_h"
plugins = ["device_calibration"]
"""
DEVCAL = "\n[organizations.h.settings.device_calibration]\n"

# (what is wrong, the config, the key the error must name, words the error must contain)
MISTAKES = [
    ("missing required key", '[feishu]\napp_secret = { env = "RELIA_SECRET" }\n' + BASE, "feishu.app_id",
     "a value"),
    ("wrong type (engine section)", '[ingress]\nport = "eighty"\n' + BASE, "ingress.port", "integer"),
    ("wrong type (list expected)", BASE.replace('plugins = ["device_calibration"]', 'plugins = "device_calibration"'),
     "organizations.h.plugins", "list"),
    ("wrong type (plugin setting)", BASE + DEVCAL + 'grace_days = "two"', "organizations.h.settings."
     "device_calibration.grace_days", "integer"),
    ("invalid value (nested plugin setting)", BASE + DEVCAL + "reminders = { before_days = [0] }",
     "organizations.h.settings.device_calibration.reminders.before_days", "at least 1"),
    ("unknown key (typo)", BASE + DEVCAL + "grace_dayz = 2", "organizations.h.settings.device_calibration."
     "grace_dayz", "no such key"),
    ("unknown section", "[temporall]\nmode = 'cluster'\n" + BASE, "temporall", "no such key"),
    ("unknown plugin", BASE.replace('["device_calibration"]', '["device_calibration", "teleportation"]'),
     "organizations.h.plugins[1]", "installed plugin"),
    ("settings for a plugin not enabled", BASE + "\n[organizations.h.settings.asset_loan]\n", "organizations.h."
     "settings.asset_loan", "plugins"),
    ("a site overriding a key it may not", BASE + "\n[organizations.h.sites.a.settings.device_calibration]\n"
     'bitable = { app_token = "bascnOther" }', "organizations.h.sites.a.settings.device_calibration.bitable."
     "app_token", "site_overridable"),
    ("secret reference to a missing variable", '[feishu]\napp_id = "cli_h"\n'
     'app_secret = { env = "RELIA_NO_SUCH_VARIABLE" }\n' + BASE, "feishu.app_secret", "RELIA_NO_SUCH_VARIABLE"),
    ("invalid time zone", BASE + 'timezone = "Asia/Shangai"', "organizations.h.timezone", "IANA"),
    ("invalid site time zone", BASE + '\n[organizations.h.sites.a]\ntimezone = "Mars/Olympus"',
     "organizations.h.sites.a.timezone", "IANA"),
    ("invalid locale", BASE + 'locale = "fr_FR"', "organizations.h.locale", "zh_CN"),
    ("compressed clock without an origin", BASE + "clock = { scale = 1440 }", "organizations.h.clock",
     "origin"),
    ("clock origin without a UTC offset", BASE + 'clock = { scale = 1440, origin = "2026-11-23T09:00:00" }',
     "organizations.h.clock", "offset"),
    ("invalid cron expression", BASE + DEVCAL + 'reconcile_cron = "every morning"',
     "organizations.h.settings.device_calibration.reconcile_cron", "cron"),
    ("invalid ISO date", BASE + 'holidays = ["2026-02-30"]', "organizations.h.holidays[0]", "ISO date"),
    ("missing seed file", '[dev]\nstandin_seeds = ["nowhere.json"]\n' + BASE, "dev.standin_seeds[0]", "JSON file"),
]


@pytest.mark.parametrize(("mistake", "text", "key", "words"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_one_mistake_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mistake: str, text: str,
                                     key: str, words: str) -> None:
    """`engine config check` reports this one mistake, once, as "FILE: KEY: expected ..., found ..."."""
    monkeypatch.setenv("RELIA_SECRET", "s")
    monkeypatch.delenv("RELIA_NO_SUCH_VARIABLE", raising=False)
    for name in ("ENGINE_LOAD_PLUGINS", "ENGINE_PLUGIN_MODULES"):
        monkeypatch.delenv(name, raising=False)
    path = (tmp_path / "hospital.toml").resolve()
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1] == f"1 problem(s) found in {path}", result.output
    (issue,) = lines[:-1]
    assert issue.startswith(f"{path}: {key}: expected "), issue
    assert words.lower() in issue.lower(), issue
    assert "Traceback" not in result.output


def test_a_good_config_passes(tmp_path: Path) -> None:
    path = tmp_path / "hospital.toml"
    path.write_text(BASE + DEVCAL + 'reconcile_cron = "30 6 * * *"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output


# ------------------------------------------------------------------------------------ broken templates

PLUGIN = '''
from pathlib import Path

from pydantic import BaseModel

from engine.hookspecs import hookimpl
from engine.scenario import Scenario


class Settings(BaseModel):
    pass


class BrokenTemplatePlugin:
    @hookimpl
    def register_scenarios(self, register):
        register(Scenario(name="broken", version="0.1", settings_model=Settings,
                          templates=Path(__file__).parent / "templates"))
'''


def broken_plugin(tmp_path: Path, template: str) -> dict[str, str]:
    """A plugin package in ``tmp_path`` with one template (and its sample); the env that loads it."""
    (tmp_path / "broken_templates.py").write_text(PLUGIN, encoding="utf-8")
    for locale in ("zh_CN", "en_US"):
        (tmp_path / "templates" / locale).mkdir(parents=True)
        (tmp_path / "templates" / locale / "notice.j2").write_text(template, encoding="utf-8")
    (tmp_path / "templates" / "samples").mkdir()
    (tmp_path / "templates" / "samples" / "notice.json").write_text(json.dumps({"device_id": "CT-1"}),
                                                                    encoding="utf-8")
    (tmp_path / "engine.toml").write_text(textwrap.dedent(f"""
        [plugins]
        load = ["BrokenTemplatePlugin"]
        [temporal]
        mode = "cluster"
        address = "127.0.0.1:{free_port()}"   # nothing listens: the check must come first
        [organizations.h]
        tenant_key = "t_h"
        plugins = ["broken"]
        """), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEISHU_", "ENGINE_"))}
    env.update({"PYTHONPATH": str(tmp_path), "ENGINE_PLUGIN_MODULES": "broken_templates:BrokenTemplatePlugin",
                "FEISHU_APP_ID": "cli_h", "FEISHU_APP_SECRET": "s", "FEISHU_BASE_URL": "http://127.0.0.1:9"})
    return env


@pytest.mark.parametrize(("kind", "template", "words"), [
    ("syntax error", "设备 {{ device_id }} 到期 {% if %}", "broken:notice"),
    ("undefined variable", "设备 {{ device_id }} 到期 {{ due_date }}", "due_date"),
])
@pytest.mark.parametrize("command", ["worker", "ingress"])
def test_a_broken_template_stops_the_process_at_start(tmp_path: Path, command: str, kind: str, template: str,
                                                      words: str) -> None:
    """The process exits at once with the template's name and problem, before it connects to anything."""
    env = broken_plugin(tmp_path, template)
    done = subprocess.run([ENGINE, command, "--config", str(tmp_path / "engine.toml")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "do not render" in output and words in output and "broken:notice" in output, output
    assert "Traceback" not in output and "not reachable" not in output, output
