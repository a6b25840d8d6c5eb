"""Secrets a scenario needs (signing and hashing keys): declared by the plugin, resolved per organization.

A scenario lists what it needs in ``Scenario.secrets`` as :class:`SecretSpec` objects. Each is one
secret per organization, read from an environment variable: the spec's ``env``, or the variable named
by the organization's settings key ``env_setting`` (so each organization can have its own secret). The
secret itself is never used as a key: :meth:`Keyring.key` derives one key per purpose with HKDF-SHA256
(RFC 5869), bound to the organization, the scenario and the purpose, so a key that signs links cannot
sign a session, and two organizations sharing a variable still get different keys.

Rotation: put the new secret in the variable and the old one in ``<VARIABLE>_PREVIOUS`` (several:
comma separated, newest first). New signatures use the new secret; verification also accepts the
previous ones (:meth:`Keyring.keys`) until they are removed from ``_PREVIOUS`` at the end of the grace
period.

Production (a config with a ``[feishu]`` table): a secret that is unset, empty, shorter than
:data:`MIN_LENGTH` characters or a known development value is a config error, so ``engine config
check`` fails and ``engine worker`` / ``engine ingress`` refuse to start (:func:`problems`).
Development (no ``[feishu]`` table): an unset variable gets a random secret, generated once and kept in
the state directory's ``secrets.json`` (mode 0600), so scan links survive a restart of ``engine dev``
and every process of one checkout agrees on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_LENGTH = 32
"""Characters a production secret has at least (``secrets.token_urlsafe(32)`` gives 43)."""

PREVIOUS_SUFFIX = "_PREVIOUS"
DEV_FILE = "secrets.json"
GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
_HKDF_SALT = b"feishu-ops-engine secrets v1"


@dataclass(frozen=True)
class SecretSpec:
    """One secret a scenario needs, once per organization.

    ``name`` is the secret's id within the scenario (``signing``); ``env`` the default environment
    variable; ``env_setting`` a key of the scenario's settings whose value, if set, names the variable
    instead; ``public_values`` values that were ever published (old development defaults), refused in
    production whatever their length.
    """

    name: str
    env: str
    env_setting: str | None = None
    description: str = ""
    public_values: tuple[str, ...] = ()


class MissingSecret(RuntimeError):
    """A production process asked for a secret that is not configured (``engine config check`` says which)."""


def hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF with SHA-256 (RFC 5869: extract, then expand to ``length`` bytes, at most 8160)."""
    if not 0 < length <= 255 * 32:
        raise ValueError(f"HKDF-SHA256 gives 1 to 8160 bytes, not {length}")
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    blocks, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        blocks += block
    return blocks[:length]


def derive(secret: bytes, *, org: str, scenario: str, name: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose: HKDF-SHA256 of ``secret``, info = org, scenario, name and purpose."""
    return hkdf_sha256(secret, salt=_HKDF_SALT, info="\x1f".join((org, scenario, name, purpose)).encode())


@dataclass(frozen=True)
class Keyring:
    """One organization's secret for one scenario: keys to sign with, and keys to verify with."""

    org: str
    scenario: str
    name: str
    current: bytes = field(repr=False)
    previous: tuple[bytes, ...] = field(default=(), repr=False)

    def key(self, purpose: str) -> bytes:
        """The key that signs (or hashes) for ``purpose`` now."""
        return derive(self.current, org=self.org, scenario=self.scenario, name=self.name, purpose=purpose)

    def keys(self, purpose: str) -> tuple[bytes, ...]:
        """Keys that verify ``purpose``: the current one first, then those of the previous secrets."""
        return tuple(derive(secret, org=self.org, scenario=self.scenario, name=self.name, purpose=purpose)
                     for secret in (self.current, *self.previous))


def env_name(spec: SecretSpec, settings: Any) -> str:
    """The environment variable holding ``spec`` for an organization with these settings."""
    if spec.env_setting:
        configured = getattr(settings, spec.env_setting, None)
        if configured:
            return str(configured)
    return spec.env


def problem(spec: SecretSpec, value: str | None) -> str | None:
    """What is wrong with ``value`` as a production secret (never the value itself), or None."""
    if value is None:
        return "it unset"
    if not value.strip():
        return "it empty"
    if value in spec.public_values:
        return "a published development value"
    if len(value) < MIN_LENGTH:
        return f"only {len(value)} characters"
    return None


def _previous(environ: Mapping[str, str], env: str) -> tuple[bytes, ...]:
    raw = environ.get(env + PREVIOUS_SUFFIX, "")
    return tuple(part.strip().encode() for part in raw.split(",") if part.strip())


class SecretStore:
    """Resolves scenarios' secrets for the organizations of one config (``EngineConfig.secrets``)."""

    def __init__(self, *, production: bool, dev_file: Path | None,
                 specs: Mapping[str, tuple[SecretSpec, ...]], environ: Mapping[str, str] | None = None) -> None:
        self.production = production
        self.dev_file = dev_file
        self.specs = dict(specs)
        self._environ = environ

    @property
    def environ(self) -> Mapping[str, str]:
        return self._environ if self._environ is not None else os.environ

    def spec(self, scenario: str, name: str | None = None) -> SecretSpec:
        declared = self.specs.get(scenario, ())
        for spec in declared:
            if name is None or spec.name == name:
                return spec
        raise KeyError(f"scenario {scenario!r} declares no secret {name or ''!r}".replace(" ''", ""))

    def keyring(self, org: str, scenario: str, settings: Any, name: str | None = None) -> Keyring:
        """The keyring of ``scenario``'s secret ``name`` (default: its first) for organization ``org``."""
        spec = self.spec(scenario, name)
        env = env_name(spec, settings)
        value = self.environ.get(env)
        if self.production:
            if problem(spec, value) is not None:
                raise MissingSecret(f"{env} is not a usable secret; run `engine config check` for the fix")
            assert value is not None
            current = value.encode()
        elif value and value.strip():
            current = value.encode()
        else:
            current = self.dev_secret(env).encode()
        return Keyring(org=org, scenario=scenario, name=spec.name, current=current,
                       previous=_previous(self.environ, env))

    def dev_secret(self, env: str) -> str:
        """The development secret for variable ``env``: from the state directory, generated on first use."""
        if self.production:
            raise MissingSecret(f"{env}: development secrets are never used with a [feishu] table")
        if self.dev_file is None:
            raise MissingSecret(f"{env} is unset and there is no state directory to keep a development secret")
        return ensure_dev_secrets(self.dev_file, [env])[env]


def ensure_dev_secrets(path: Path, names: list[str]) -> dict[str, str]:
    """The development secrets ``names`` kept in ``path`` (JSON, mode 0600), generating the missing ones.

    Several processes may start at once (``engine worker`` and ``engine ingress``): an exclusive lock on
    the file makes them agree on one value.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read()
        stored: dict[str, str] = {}
        with contextlib.suppress(json.JSONDecodeError):
            loaded = json.loads(text) if text.strip() else {}
            stored = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        missing = [name for name in names if not stored.get(name)]
        if missing:
            for name in missing:
                stored[name] = _random.token_urlsafe(32)
            handle.seek(0)
            handle.truncate()
            json.dump(stored, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        return {name: stored[name] for name in names}
