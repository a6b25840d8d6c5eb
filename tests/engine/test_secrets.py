"""Plugins' secrets: production refuses to start without them, development generates and keeps its own,
each purpose gets its own key, and a rotation keeps old signatures valid while the previous secret is listed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.config import load_config
from engine.plugins import load_plugins
from engine.runtime.processes import _prepare_dev_secrets
from engine.secrets import MIN_LENGTH, Keyring, MissingSecret, derive, ensure_dev_secrets, hkdf_sha256

GOOD = "a-production-secret-that-is-long-enough-0123"
PLUGINS = "asset_loan,recruiting"
PRODUCTION = """
[feishu]
app_id = "cli_prod"
app_secret = { env = "TEST_FEISHU_APP_SECRET" }

[organizations.acme]
plugins = ["asset_loan"]

[organizations.rennuo]
plugins = ["recruiting"]
[organizations.rennuo.settings.recruiting]
contact_key_env = "RENNUO_CONTACT_KEY"
"""


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(PRODUCTION, encoding="utf-8")
    monkeypatch.setenv("ENGINE_LOAD_PLUGINS", PLUGINS)
    monkeypatch.setenv("TEST_FEISHU_APP_SECRET", "feishu-secret")
    for name in ("ASSET_LOAN_SIGNING_KEY", "RENNUO_CONTACT_KEY", "RECRUITING_CONTACT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return path


def _scenarios() -> dict[str, object]:
    import plugins.asset_loan as asset_loan
    import plugins.recruiting as recruiting

    return load_plugins(modules={"asset_loan": asset_loan, "recruiting": recruiting}, entry_points=False).scenarios


@pytest.mark.parametrize(("value", "found"), [
    (None, "found it unset"),
    ("", "found it empty"),
    ("asset-loan-dev-signing-key-not-for-production", "found a published development value"),
    ("short-but-random", "found only 16 characters"),
])
def test_config_check_fails_without_a_usable_secret(production: Path, monkeypatch: pytest.MonkeyPatch,
                                                    value: str | None, found: str) -> None:
    monkeypatch.setenv("RENNUO_CONTACT_KEY", GOOD)
    if value is not None:
        monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", value)
    result = CliRunner().invoke(cli, ["config", "check", str(production)])
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "ASSET_LOAN_SIGNING_KEY" in line)
    assert "organizations.acme.settings.asset_loan.signing_key_env" in line and found in line
    assert f"at least {MIN_LENGTH} characters" in line and "export ASSET_LOAN_SIGNING_KEY=" in line
    assert "RENNUO_CONTACT_KEY" not in result.output  # that one is fine
    if value:
        assert value not in result.output  # a secret, even a bad one, is never printed


def test_config_check_passes_with_every_secret(production: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", GOOD)
    missing = CliRunner().invoke(cli, ["config", "check", str(production)])
    # the organization names its own variable for the contact key: that one is asked for, not the default
    assert missing.exit_code == 1 and "RENNUO_CONTACT_KEY" in missing.output
    assert "RECRUITING_CONTACT_KEY" not in missing.output
    monkeypatch.setenv("RENNUO_CONTACT_KEY", GOOD + "-other")
    result = CliRunner().invoke(cli, ["config", "check", str(production)])
    assert result.exit_code == 0, result.output
    assert GOOD not in result.output


@pytest.mark.parametrize("command", [["worker"], ["ingress", "--port", "0"]])
def test_production_processes_refuse_to_start_without_their_secrets(production: Path, command: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--config", str(production), *command])
    assert result.exit_code == 2
    assert "ASSET_LOAN_SIGNING_KEY" in result.output and "RENNUO_CONTACT_KEY" in result.output


def test_production_never_falls_back_to_a_development_secret(production: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", GOOD)
    monkeypatch.setenv("RENNUO_CONTACT_KEY", GOOD)
    config = load_config(production, _scenarios())
    monkeypatch.delenv("ASSET_LOAN_SIGNING_KEY")  # gone after the start: refused, not replaced
    with pytest.raises(MissingSecret, match="ASSET_LOAN_SIGNING_KEY"):
        config.org("acme").keyring("asset_loan")
    assert not (production.parent / ".state" / "secrets.json").exists()


def test_dev_generates_secrets_once_and_keeps_them_across_restarts(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ASSET_LOAN_SIGNING_KEY", "RECRUITING_CONTACT_KEY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "engine.toml"
    path.write_text('[organizations.acme]\nplugins = ["asset_loan", "recruiting"]\n', encoding="utf-8")
    state = tmp_path / "state"
    said: list[str] = []
    config = load_config(path, _scenarios())
    _prepare_dev_secrets(config, state, said.append)
    file = state / "secrets.json"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert said and "ASSET_LOAN_SIGNING_KEY" in said[0] and "RECRUITING_CONTACT_KEY" in said[0]
    first = config.org("acme").keyring("asset_loan").key("links")
    stored = ensure_dev_secrets(file, ["ASSET_LOAN_SIGNING_KEY", "RECRUITING_CONTACT_KEY"])
    assert all(len(value) >= MIN_LENGTH for value in stored.values()) and len(set(stored.values())) == 2
    assert first == derive(stored["ASSET_LOAN_SIGNING_KEY"].encode(), org="acme", scenario="asset_loan",
                           name="signing", purpose="links")

    restarted = load_config(path, _scenarios())
    again: list[str] = []
    _prepare_dev_secrets(restarted, state, again.append)
    assert restarted.org("acme").keyring("asset_loan").key("links") == first  # old links still open
    assert ensure_dev_secrets(file, list(stored)) == stored

    # an empty variable is as good as unset: the generated secret, never an empty key
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", "")
    assert restarted.org("acme").keyring("asset_loan").key("links") == first
    # a variable that is set wins over the generated value, and nothing is generated for it
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", GOOD)
    assert restarted.org("acme").keyring("asset_loan").key("links") != first


def test_hkdf_matches_rfc_5869() -> None:
    # RFC 5869, appendix A.1 (test case 1, SHA-256)
    okm = hkdf_sha256(bytes([0x0B] * 22), salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA)), length=42)
    assert okm.hex() == ("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                         "34007208d5b887185865")


def test_one_key_per_purpose_and_organization() -> None:
    ring = Keyring(org="acme", scenario="asset_loan", name="signing", current=GOOD.encode())
    purposes = ["links", "sessions", "login_state", "csrf"]
    keys = {ring.key(purpose) for purpose in purposes}
    assert len(keys) == 4 and GOOD.encode() not in keys and all(len(k) == 32 for k in keys)
    other_org = Keyring(org="other", scenario="asset_loan", name="signing", current=GOOD.encode())
    assert not keys & {other_org.key(purpose) for purpose in purposes}
    assert "a-production" not in repr(ring)  # keyrings never print their secrets


def test_rotation_verifies_with_previous_secrets_and_signs_with_the_current_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "engine.toml"
    path.write_text('[organizations.acme]\nplugins = ["asset_loan"]\n', encoding="utf-8")
    config = load_config(path, _scenarios())
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY", "new-" + GOOD)
    monkeypatch.setenv("ASSET_LOAN_SIGNING_KEY_PREVIOUS", f" {GOOD} , older-{GOOD},")
    ring = config.org("acme").keyring("asset_loan")
    old = Keyring(org="acme", scenario="asset_loan", name="signing", current=GOOD.encode())
    assert ring.key("links") != old.key("links")
    assert ring.keys("links")[0] == ring.key("links") and ring.keys("links")[1] == old.key("links")
    assert len(ring.keys("links")) == 3
