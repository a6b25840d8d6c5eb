"""The organization config: validation, every error at once, site overrides, effective settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_plugins import EchoPlugin, OtherPlugin

from engine.config import ConfigError, load_config
from engine.plugins import load_plugins

SCENARIOS = load_plugins(modules={"echo": EchoPlugin(), "other": OtherPlugin()}, entry_points=False).scenarios

GOOD = """
[temporal]
mode = "embedded"

[organizations.rennuo]
name = "仁诺医疗"
timezone = "Asia/Shanghai"
tenant_key = "t_rennuo"
plugins = ["echo"]

[organizations.rennuo.settings.echo]
greeting = "您好"
lead_days = [30, 7, 1]

[organizations.rennuo.site_overridable]
echo = ["lead_days", "escalation.times"]

[organizations.rennuo.sites.xian]
name = "西安仁诺"
[organizations.rennuo.sites.xian.settings.echo]
lead_days = [14, 3]
escalation = { times = 5 }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_group_standard_and_site_override(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), SCENARIOS)
    org = config.org("rennuo")
    assert org.settings("echo").lead_days == [30, 7, 1]
    site = org.settings("echo", site="xian")
    assert site.lead_days == [14, 3]
    assert site.escalation == {"every_days": 1, "times": 5}
    assert site.greeting == "您好"  # not overridden: the group's standard
    assert org.settings("echo", site="unknown").lead_days == [30, 7, 1]
    assert config.org_by_tenant("t_rennuo") is org


def test_every_mistake_is_reported_at_once_with_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    text = """
[feishu]
app_id = "cli_x"
app_secret = { env = "NO_SUCH_SECRET" }

[organizations.a]
timezone = "Mars/Olympus"
locale = "fr_FR"
plugins = ["echo", "nope"]
holidays = ["2026-13-01"]

[organizations.a.settings.echo]
lead_days = "thirty"
colour = "red"

[organizations.a.sites.s1.settings.echo]
greeting = "hi"
"""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, SCENARIOS)
    by_key = {issue.key: issue for issue in caught.value.issues}
    assert all(issue.file == str(path.resolve()) or issue.file == str(path) for issue in caught.value.issues)
    assert "NO_SUCH_SECRET" in by_key["feishu.app_secret"].expected
    assert "IANA" in by_key["organizations.a.timezone"].expected
    assert "zh_CN" in by_key["organizations.a.locale"].expected
    assert "installed plugin" in by_key["organizations.a.plugins[1]"].expected
    assert "ISO date" in by_key["organizations.a.holidays[0]"].expected
    assert "valid list" in by_key["organizations.a.settings.echo.lead_days"].expected
    assert by_key["organizations.a.settings.echo.colour"].expected == "no such key"


def test_a_site_may_not_override_what_the_group_keeps(tmp_path: Path) -> None:
    text = GOOD.replace('[organizations.rennuo.sites.xian.settings.echo]',
                        '[organizations.rennuo.sites.xian.settings.echo]\ngreeting = "hi"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), SCENARIOS)
    (issue,) = caught.value.issues
    assert issue.key == "organizations.rennuo.sites.xian.settings.echo.greeting"
    assert "site_overridable.echo" in issue.hint


def test_admin_open_id_is_optional_and_checked(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD), SCENARIOS).orgs["rennuo"].config.admin_open_id is None
    admin = 'admin_open_id = "ou_7d8a6e6df7621556ce0d21922b676706"'
    good = GOOD.replace('tenant_key = "t_rennuo"', f'tenant_key = "t_rennuo"\n{admin}')
    assert load_config(write(tmp_path, good), SCENARIOS).orgs["rennuo"].config.admin_open_id == (
        "ou_7d8a6e6df7621556ce0d21922b676706")
    bad = GOOD.replace('tenant_key = "t_rennuo"', 'tenant_key = "t_rennuo"\nadmin_open_id = "13800138000"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad), SCENARIOS)
    (issue,) = caught.value.issues
    assert issue.key == "organizations.rennuo.admin_open_id"
    assert "open_id" in issue.expected and "remove the key" in issue.hint


def test_wrong_types_in_engine_sections(tmp_path: Path) -> None:
    text = GOOD.replace('mode = "embedded"', 'mode = "cloud"\nport = "x"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), SCENARIOS)
    keys = {i.key for i in caught.value.issues}
    assert keys == {"temporal.mode", "temporal.port"}


def test_workflow_task_slots(tmp_path: Path) -> None:
    """Few workflow tasks at a time by default: a replay storm after a restart must not run into task timeouts."""
    assert load_config(write(tmp_path, GOOD), SCENARIOS).temporal.max_concurrent_workflow_tasks == 8
    text = GOOD.replace('mode = "embedded"', 'mode = "embedded"\nmax_concurrent_workflow_tasks = 1')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), SCENARIOS)
    assert [i.key for i in caught.value.issues] == ["temporal.max_concurrent_workflow_tasks"]


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[organizations.a\n"), SCENARIOS)
    assert caught.value.issues[0].key == "(syntax)"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml", SCENARIOS)


def test_secrets_resolve_from_environment_and_are_not_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SECRET", "s3cr3t")
    text = GOOD + '\n[feishu]\napp_id = "cli_a"\napp_secret = { env = "MY_SECRET" }\n'
    config = load_config(write(tmp_path, text), SCENARIOS)
    assert config.secret("app_secret") == "s3cr3t"
    assert "s3cr3t" not in repr(config.file)
    monkeypatch.setenv("FEISHU_APP_SECRET", "override")
    assert config.secret("app_secret") == "override"


def test_a_cron_temporal_reads_differently_names_key_found_and_fix(tmp_path: Path) -> None:
    """Regression (issue 15): summary_cron = "0 9 L * *" passed the check and failed the schedule sync."""
    from plugins import asset_loan, handover, recruiting

    plugins = load_plugins(modules={"asset_loan": asset_loan, "handover": handover, "recruiting": recruiting},
                           entry_points=False)
    path = tmp_path / "engine.toml"
    path.write_text("""
[organizations.h1]
timezone = "Europe/Berlin"
plugins = ["asset_loan", "handover", "recruiting"]
site_overridable = { handover = ["stats_cron"] }

[organizations.h1.settings.asset_loan]
summary_cron = "0 9 L * *"

[organizations.h1.settings.recruiting.report]
cron = "0 9 * * 1#1"

[organizations.h1.sites.east.settings.handover]
stats_cron = "0 9 1 * 1"
""", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_config(path, plugins.scenarios)  # what `engine config check` and every process start run
    issues = {issue.key: issue for issue in error.value.issues}
    assert sorted(issues) == ["organizations.h1.settings.asset_loan.summary_cron",
                              "organizations.h1.settings.recruiting.report.cron",
                              "organizations.h1.sites.east.settings.handover.stats_cron"]
    month_end = issues["organizations.h1.settings.asset_loan.summary_cron"]
    assert month_end.file == str(path)
    assert month_end.found.startswith("'0 9 L * *'") and "refused by Temporal" in month_end.found
    assert "28-31" in month_end.hint
    assert "every Monday" in issues["organizations.h1.settings.recruiting.report.cron"].found
    assert "write * in the other" in issues["organizations.h1.sites.east.settings.handover.stats_cron"].hint
    # the written form, as `engine config check` prints it
    assert str(month_end).startswith(f"{path}: organizations.h1.settings.asset_loan.summary_cron: expected a cron")
