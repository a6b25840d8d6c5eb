"""The organization config: one TOML file, validated as a whole, every mistake reported at once.

The group sets each plugin's settings; a site (e.g. one hospital of the group) overrides only the keys
the group lets it (``site_overridable``). Secrets are never written in the file: they are references to
environment variables (``app_secret = { env = "FEISHU_APP_SECRET" }``) and are never printed.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.clock import BusinessClock
from engine.rules.cron import CronError
from engine.secrets import DEV_FILE, GENERATE_HINT, MIN_LENGTH, PREVIOUS_SUFFIX, Keyring, SecretStore, env_name, problem

if TYPE_CHECKING:
    from engine.scenario import Scenario

SUPPORTED_LOCALES = ("zh_CN", "en_US")
# Feishu user ids within an app: "ou_" and 32 lowercase hex digits in practice; letters, digits, "_" and
# "-" are accepted so the local stand-in's and tests' ids pass.
OPEN_ID = re.compile(r"ou_[A-Za-z0-9_-]{1,64}")
FEISHU_ENV_OVERRIDES = {
    "app_id": "FEISHU_APP_ID",
    "app_secret": "FEISHU_APP_SECRET",
    "verification_token": "FEISHU_VERIFICATION_TOKEN",
    "encrypt_key": "FEISHU_ENCRYPT_KEY",
    "base_url": "FEISHU_BASE_URL",
}


# ---------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class ConfigIssue:
    """One mistake: where it is, what was expected, what was found, and how to fix it."""

    file: str
    key: str
    expected: str
    found: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.key}: expected {self.expected}, found {self.found}"
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(Exception):
    """Raised with every issue of a config file, not just the first."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


# ------------------------------------------------------------------------------------------ the models


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRef(_Strict):
    """A secret's value lives in an environment variable; only the variable's name is in the file."""

    env: str

    def resolve(self) -> str:
        value = os.environ.get(self.env)
        if value is None:
            raise KeyError(self.env)
        return value

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})"


class TlsSettings(_Strict):
    client_cert: Path | None = None
    client_key: Path | None = None
    server_root_ca_cert: Path | None = None
    domain: str | None = None


class CodecServerSettings(_Strict):
    """The codec endpoint operators point the Web UI and ``temporal --codec-endpoint`` at (engine/codec_server.py).

    It decrypts whatever it is sent, so it needs a token and listens on loopback unless told otherwise.
    """

    token: SecretRef | None = None
    host: str = "127.0.0.1"
    port: int = 8081
    # Web UI origins allowed to call it from the browser (CORS), e.g. "http://127.0.0.1:8233"
    cors_origins: list[str] = Field(default_factory=list)


class TemporalSettings(_Strict):
    """``embedded`` runs the ``temporal`` dev server from the state dir; ``cluster`` connects to one.

    ``payload_keys`` names the environment variable with the payload codec's keys (engine/codec.py):
    with it, everything stored in Temporal is encrypted.
    """

    mode: Literal["embedded", "cluster"] = "embedded"
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "engine"
    tls: TlsSettings | None = None
    ui_port: int | None = None
    # Workflow tasks are CPU work under one GIL: more at once only makes each slower. After a worker
    # restart every workflow replays; with a hundred at once each took over the 10 s task timeout and was
    # done again (tests/reliability). The server queues the rest.
    max_concurrent_workflow_tasks: int = Field(8, ge=2)
    payload_keys: SecretRef | None = None
    codec_server: CodecServerSettings = Field(default_factory=CodecServerSettings)


class IngressSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = 8080
    mode: Literal["webhook", "long_connection"] = "webhook"
    max_body_bytes: int = 1_048_576
    timestamp_tolerance_seconds: int = 300
    public_url: str | None = None  # how Feishu users reach the ingress (links in QR codes, cards)
    # Under abuse (engine/feishu/guard.py): a request's headers must arrive within header_timeout_seconds
    # of its connection (or of the previous answer), its body within body_timeout_seconds of its headers
    # (408 otherwise); over max_connections a connection is answered 503 and closed; over
    # max_concurrent_requests (requests whose body is in) a request is answered 503. Feishu sends a push
    # at once and waits 3 s for the answer.
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(15.0, gt=0)
    keep_alive_seconds: int = Field(5, ge=1)
    max_connections: int = Field(10_000, ge=1)  # also kept under the open-file limit (minus 256)
    max_concurrent_requests: int = Field(512, ge=1)  # a burst of a few hundred pushes fits
    backlog: int = Field(2048, ge=1)
    # Fairness: events of one chat (and of one user) dispatched at once; up to dispatch_queue others of
    # that chat or user wait their turn (more are answered 503: Feishu pushes again), and no other chat
    # waits for them.
    dispatches_per_chat: int = Field(4, ge=1)
    dispatches_per_user: int = Field(4, ge=1)
    dispatch_queue: int = Field(16, ge=0)  # waiting per chat or sender; more are answered 503 at once


class FeishuSettings(_Strict):
    """The Feishu app. With no ``[feishu]`` table at all, ``engine dev`` runs the local stand-in."""

    app_id: str
    app_secret: SecretRef
    verification_token: SecretRef | None = None
    encrypt_key: SecretRef | None = None
    base_url: str = "https://open.feishu.cn"
    bot_open_id: str | None = None
    timeout_seconds: float = 10.0
    # Client-side limits; Feishu's published ones by default (message send: 50/s per app, 5/s per chat).
    # The limiter counts a call until its answer is back, so it needs no margin below them.
    messages_per_second: float = 50.0
    messages_per_second_per_chat: float = 5.0
    calls_per_second: float = 40.0


class SiteConfig(_Strict):
    name: str = ""
    timezone: str | None = None
    locale: str | None = None
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ReportAudience(_Strict):
    """Who gets one site's monthly approval card: open ids and/or one group chat."""

    recipients: list[str] = Field(default_factory=list)
    chat_id: str = ""


class ApprovalReportSettings(_Strict):
    """``[organizations.<id>.approvals.report]``: record every decided Feishu approval in a Bitable table
    (``app_token``/``table_id``, written by the engine) and send last month's approval times on the first
    working day of each month at ``send_hour`` (the organization's zone): the group's card to
    ``recipients``/``chat_id``, each site's to ``sites.<site id>``. ``top_steps``/``top_approvers``: how
    many of the slowest holds and of the approvers the card lists (engine/approval_report.py)."""

    app_token: str = ""
    table_id: str = ""
    recipients: list[str] = Field(default_factory=list)
    chat_id: str = ""
    send_hour: int = Field(9, ge=0, le=23)
    top_steps: int = Field(5, ge=1, le=20)
    top_approvers: int = Field(10, ge=1, le=50)
    sites: dict[str, ReportAudience] = Field(default_factory=dict)

    @property
    def recording(self) -> bool:
        """Whether decided approvals are recorded (a table is configured)."""
        return bool(self.app_token and self.table_id)


class OrgApprovals(_Strict):
    """``[organizations.<id>.approvals]``: the engine's own approval settings (not a scenario's)."""

    report: ApprovalReportSettings = Field(default_factory=ApprovalReportSettings)


class OrgConfig(_Strict):
    name: str = ""
    timezone: str = "Asia/Shanghai"
    locale: str = "zh_CN"
    tenant_key: str = ""
    plugins: list[str] = Field(default_factory=list)
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    site_overridable: dict[str, list[str]] = Field(default_factory=dict)
    sites: dict[str, SiteConfig] = Field(default_factory=dict)
    templates_dir: Path | None = None
    # Extra days off / make-up workdays beyond the maintained calendar (ISO dates).
    holidays: list[str] = Field(default_factory=list)
    workdays: list[str] = Field(default_factory=list)
    # The Feishu open_id of the person who keeps this organization's engine config: the engine's own
    # notices (a year without an official holiday calendar) go there. Optional.
    admin_open_id: str | None = None
    # Real time unless a drill or reliability run compresses it (engine/clock.py).
    clock: BusinessClock = Field(default_factory=BusinessClock)
    approvals: OrgApprovals = Field(default_factory=OrgApprovals)


class DevSettings(_Strict):
    """Only for ``engine dev``: sample data the local stand-in starts with (paths beside the config)."""

    standin_seeds: list[Path] = Field(default_factory=list)


class PluginsSection(_Strict):
    """``load`` is an allowlist: only these plugins load (like ``ENGINE_LOAD_PLUGINS``)."""

    load: list[str] | None = None


class FileConfig(_Strict):
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    feishu: FeishuSettings | None = None
    plugins: PluginsSection = Field(default_factory=PluginsSection)
    dev: DevSettings = Field(default_factory=DevSettings)
    state_dir: Path | None = None
    organizations: dict[str, OrgConfig] = Field(default_factory=dict)


# ----------------------------------------------------------------------------------- resolved context


@dataclass
class OrgContext:
    """One organization as the engine uses it: resolved zone, enabled plugins, effective settings."""

    id: str
    name: str
    timezone: str
    locale: str
    tenant_key: str
    plugins: tuple[str, ...]
    config: OrgConfig
    _settings: dict[tuple[str, str | None], BaseModel] = field(default_factory=dict, repr=False)
    templates_dir: Path | None = None
    secrets: SecretStore | None = field(default=None, repr=False)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def site_ids(self) -> list[str]:
        return list(self.config.sites)

    def enabled(self, scenario: str) -> bool:
        return scenario in self.plugins

    def settings(self, scenario: str, site: str | None = None) -> Any:
        """The effective settings of ``scenario`` for the group (``site=None``) or one site."""
        if site is not None and (scenario, site) not in self._settings:
            site = None  # an unknown or settings-less site gets the group's standard
        try:
            return self._settings[(scenario, site)]
        except KeyError:
            raise KeyError(f"{scenario!r} is not enabled for organization {self.id!r}") from None

    def keyring(self, scenario: str, name: str | None = None) -> Keyring:
        """The keys of ``scenario``'s secret ``name`` (default: its first) for this organization.

        Raises :class:`engine.secrets.MissingSecret` in production when the secret is not configured, and
        ``KeyError`` when the scenario declares no such secret.
        """
        if self.secrets is None:
            raise KeyError(f"organization {self.id!r} was built without a secret store")
        return self.secrets.keyring(self.id, scenario, self.settings(scenario), name)

    def site_zone(self, site: str | None) -> ZoneInfo:
        if site and site in self.config.sites and self.config.sites[site].timezone:
            return ZoneInfo(self.config.sites[site].timezone)  # type: ignore[arg-type]
        return self.zone


@dataclass
class EngineConfig:
    """The whole validated config. ``path`` is where it came from (names in error messages)."""

    path: Path
    file: FileConfig
    orgs: dict[str, OrgContext]
    secrets: SecretStore | None = None  # plugins' secrets; production (a [feishu] table) or development

    @property
    def temporal(self) -> TemporalSettings:
        return self.file.temporal

    @property
    def ingress(self) -> IngressSettings:
        return self.file.ingress

    @property
    def feishu(self) -> FeishuSettings | None:
        return self.file.feishu

    def state_dir(self, override: Path | None = None) -> Path:
        if override is not None:
            return override
        return _state_dir(self.path, self.file.state_dir)

    def secret_variables(self) -> list[str]:
        """The environment variables holding the secrets the enabled plugins need, each once."""
        names: list[str] = []
        for org in self.orgs.values():
            for scenario in org.plugins:
                if self.secrets is None or (scenario, None) not in org._settings:
                    continue
                for spec in self.secrets.specs.get(scenario, ()):
                    variable = env_name(spec, org._settings[(scenario, None)])
                    if variable not in names:
                        names.append(variable)
        return names

    def org(self, org_id: str) -> OrgContext:
        try:
            return self.orgs[org_id]
        except KeyError:
            raise KeyError(f"no organization {org_id!r} in {self.path}") from None

    def org_by_tenant(self, tenant_key: str) -> OrgContext | None:
        for org in self.orgs.values():
            if org.tenant_key and org.tenant_key == tenant_key:
                return org
        return None

    def secret(self, name: str) -> str | None:
        """Resolve a Feishu secret (environment first, for every key in FEISHU_ENV_OVERRIDES)."""
        env_name = FEISHU_ENV_OVERRIDES.get(name)
        if env_name and env_name in os.environ:
            return os.environ[env_name]
        if self.feishu is None:
            return None
        value = getattr(self.feishu, name, None)
        if isinstance(value, SecretRef):
            return value.resolve()
        return value


# --------------------------------------------------------------------------------------------- loading


def _dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _pydantic_issues(file: str, prefix: str, error: ValidationError) -> list[ConfigIssue]:
    issues = []
    for item in error.errors():
        key = _dotted([prefix, *item["loc"]] if prefix else item["loc"])
        if item["type"] == "extra_forbidden":
            issues.append(ConfigIssue(file, key, "no such key", _describe(item.get("input")),
                                      "remove it or check its spelling"))
        elif item["type"] == "missing":
            issues.append(ConfigIssue(file, key, "a value", "nothing", "add this required key"))
        elif isinstance(cron := item.get("ctx", {}).get("error"), CronError):
            issues.append(ConfigIssue(file, key, "a cron that Temporal schedules run as written (README: Schedules)",
                                      f"{_describe(item.get('input'))}: {cron.problem}", cron.hint))
        else:
            issues.append(ConfigIssue(file, key, item["msg"].lower(), _describe(item.get("input")),
                                      "fix the value"))
    return issues


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``; nested tables merge, everything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _leaf_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            keys.extend(_leaf_keys(value, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def _allowed(key: str, allowed: Iterable[str]) -> bool:
    return any(key == a or key.startswith(a + ".") for a in allowed)


def _check_zone(file: str, key: str, zone: str) -> list[ConfigIssue]:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [ConfigIssue(file, key, "an IANA timezone such as 'Asia/Shanghai'", _describe(zone),
                            "use a name from the tz database")]
    return []


def _check_locale(file: str, key: str, locale: str) -> list[ConfigIssue]:
    if locale not in SUPPORTED_LOCALES:
        return [ConfigIssue(file, key, f"one of {', '.join(SUPPORTED_LOCALES)}", _describe(locale),
                            "pick a supported locale")]
    return []


def _unknown_keys(file: str, prefix: str, table: Mapping[str, Any], model: type[BaseModel]) -> list[ConfigIssue]:
    """Top-level keys the settings model does not know (a typo must not silently keep the default).

    Models built on :class:`engine.scenario.PluginSettings` forbid unknown keys at every depth; this
    check covers the top level of any model.
    """
    if model.model_config.get("extra") == "forbid":
        return []  # pydantic reports them, with their full path
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    return [ConfigIssue(file, f"{prefix}.{key}", "no such key", _describe(key), "remove it or check its spelling")
            for key in table if key not in known]


def _report_issues(file: str, key: str, org: OrgConfig) -> list[ConfigIssue]:
    """The approval report's recipients must be real ids, its sites the organization's, and a card needs
    the table it is computed from."""
    report = org.approvals.report
    issues: list[ConfigIssue] = []
    audiences = [(key, report), *((f"{key}.sites.{site}", a) for site, a in report.sites.items())]
    for where, audience in audiences:
        for index, open_id in enumerate(audience.recipients):
            if not OPEN_ID.fullmatch(open_id):
                issues.append(ConfigIssue(file, f"{where}.recipients[{index}]", "a Feishu open_id (ou_...)",
                                          _describe(open_id), "copy the person's open_id from Feishu"))
        if audience.chat_id and not audience.chat_id.startswith("oc_"):
            issues.append(ConfigIssue(file, f"{where}.chat_id", "a Feishu chat id (oc_...)",
                                      _describe(audience.chat_id), "copy the group chat's chat_id from Feishu"))
    for site in report.sites:
        if site not in org.sites:
            issues.append(ConfigIssue(file, f"{key}.sites.{site}", f"a site of this organization "
                                      f"({', '.join(org.sites) or 'none'})", _describe(site),
                                      "use the site's id from [organizations.<id>.sites]"))
    sends = any(a.recipients or a.chat_id for _, a in audiences)
    if bool(report.app_token) != bool(report.table_id) or (sends and not report.recording):
        issues.append(ConfigIssue(file, f"{key}.table_id" if report.app_token else f"{key}.app_token",
                                  "both app_token and table_id of the approvals table",
                                  "only one of them" if report.app_token or report.table_id else "neither",
                                  "set both (the Bitable the engine records decided approvals in)"))
    return issues


def _codec_issues(file: str, temporal: TemporalSettings) -> list[ConfigIssue]:
    """An unset or unusable payload key, and a codec endpoint without its token."""
    issues = []
    ref = temporal.payload_keys
    if ref is not None:
        from engine.codec import CodecKeyError, parse_keys  # imports temporalio: only when a key is configured

        text = os.environ.get(ref.env)
        if text is None:
            issues.append(ConfigIssue(file, "temporal.payload_keys", f"environment variable {ref.env} to be set",
                                      "it unset", f"export {ref.env}=id:base64key (python -m engine.codec "
                                      "prints a new one), or remove the key to store payloads unencrypted"))
        else:
            try:
                parse_keys(text)
            except CodecKeyError as error:
                issues.append(ConfigIssue(file, "temporal.payload_keys", f"usable keys in {ref.env}",
                                          error.problem, error.hint))
    token = temporal.codec_server.token
    if token is not None and not os.environ.get(token.env):
        fix = f"export {token.env}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        issues.append(ConfigIssue(file, "temporal.codec_server.token",
                                  f"environment variable {token.env} to be set and not empty", "it unset or empty",
                                  fix))
    return issues


def parse_config(
    data: Mapping[str, Any], path: Path, scenarios: Mapping[str, Scenario]
) -> EngineConfig:
    """Validate a parsed TOML document against the engine's models and each plugin's settings model."""
    file = str(path)
    try:
        parsed = FileConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_pydantic_issues(file, "", error)) from None

    issues: list[ConfigIssue] = []
    if parsed.feishu is not None:
        for name in ("app_secret", "verification_token", "encrypt_key"):
            ref = getattr(parsed.feishu, name)
            if isinstance(ref, SecretRef) and ref.env not in os.environ:
                issues.append(ConfigIssue(file, f"feishu.{name}", f"environment variable {ref.env} to be set",
                                          "it unset", f"export {ref.env}=... before starting the engine"))
    issues += _codec_issues(file, parsed.temporal)
    for index, seed in enumerate(parsed.dev.standin_seeds):
        if not (path.parent / seed).is_file():
            issues.append(ConfigIssue(file, f"dev.standin_seeds[{index}]", "a JSON file beside the config",
                                      _describe(str(seed)), "fix the path (relative to the config file)"))
    if not parsed.organizations:
        issues.append(ConfigIssue(file, "organizations", "at least one organization", "none",
                                  "add an [organizations.<id>] table"))

    store = SecretStore(production=parsed.feishu is not None, dev_file=_state_dir(path, parsed.state_dir) / DEV_FILE,
                        specs={name: tuple(scenario.secrets) for name, scenario in scenarios.items()})
    orgs: dict[str, OrgContext] = {}
    for org_id, org in parsed.organizations.items():
        base = f"organizations.{org_id}"
        if ":" in org_id or not org_id:
            issues.append(ConfigIssue(file, base, "an id without ':'", _describe(org_id), "rename the table"))
        issues += _check_zone(file, f"{base}.timezone", org.timezone)
        issues += _check_locale(file, f"{base}.locale", org.locale)
        for site_id, site in org.sites.items():
            if site.timezone:
                issues += _check_zone(file, f"{base}.sites.{site_id}.timezone", site.timezone)
            if site.locale:
                issues += _check_locale(file, f"{base}.sites.{site_id}.locale", site.locale)
        for day_key in ("holidays", "workdays"):
            for index, text in enumerate(getattr(org, day_key)):
                try:
                    dt.date.fromisoformat(text)
                except ValueError:
                    issues.append(ConfigIssue(file, f"{base}.{day_key}[{index}]", "an ISO date (YYYY-MM-DD)",
                                              _describe(text), "write the date as 2026-10-01"))

        if org.admin_open_id is not None and not OPEN_ID.fullmatch(org.admin_open_id):
            issues.append(ConfigIssue(file, f"{base}.admin_open_id", "a Feishu open_id (ou_ followed by letters "
                                      "and digits)", _describe(org.admin_open_id),
                                      "copy the admin's open_id from Feishu, or remove the key"))

        issues += _report_issues(file, f"{base}.approvals.report", org)

        context = OrgContext(
            id=org_id, name=org.name or org_id, timezone=org.timezone, locale=org.locale,
            tenant_key=org.tenant_key, plugins=tuple(org.plugins), config=org,
            templates_dir=(path.parent / org.templates_dir).resolve() if org.templates_dir else None,
            secrets=store,
        )
        for index, name in enumerate(org.plugins):
            if name not in scenarios:
                known = ", ".join(sorted(scenarios)) or "none loaded"
                issues.append(ConfigIssue(file, f"{base}.plugins[{index}]", f"an installed plugin ({known})",
                                          _describe(name), "install the plugin or remove it from the list"))
        for key_table in ("settings", "site_overridable"):
            for name in getattr(org, key_table):
                if name not in org.plugins:
                    issues.append(ConfigIssue(file, f"{base}.{key_table}.{name}", "a plugin listed in plugins",
                                              _describe(name), f"add {name!r} to {base}.plugins or remove the table"))
        for site_id, site in org.sites.items():
            for name in site.settings:
                if name not in org.plugins:
                    issues.append(ConfigIssue(file, f"{base}.sites.{site_id}.settings.{name}",
                                              "a plugin listed in plugins", _describe(name),
                                              f"add {name!r} to {base}.plugins or remove the table"))

        for name in org.plugins:
            scenario = scenarios.get(name)
            if scenario is None:
                continue
            group = org.settings.get(name, {})
            issues += _unknown_keys(file, f"{base}.settings.{name}", group, scenario.settings_model)
            try:
                context._settings[(name, None)] = scenario.settings_model.model_validate(group)
            except ValidationError as error:
                issues += _pydantic_issues(file, f"{base}.settings.{name}", error)
                continue
            allowed = org.site_overridable.get(name, list(scenario.site_overridable))
            for site_id, site in org.sites.items():
                own = site.settings.get(name)
                if not own:
                    continue
                site_base = f"{base}.sites.{site_id}.settings.{name}"
                refused = [key for key in _leaf_keys(own) if not _allowed(key, allowed)]
                for key in refused:
                    issues.append(ConfigIssue(
                        file, f"{site_base}.{key}",
                        f"only keys the group lets sites override ({', '.join(allowed) or 'none'})",
                        _describe(key),
                        f"remove it, or add it to {base}.site_overridable.{name}"))
                if refused:
                    continue
                try:
                    # on top of the group's *effective* settings, so a nested key keeps its siblings
                    effective = context._settings[(name, None)].model_dump()
                    context._settings[(name, site_id)] = scenario.settings_model.model_validate(
                        deep_merge(effective, own))
                except ValidationError as error:
                    issues += _pydantic_issues(file, site_base, error)
        if store.production:
            issues += _secret_issues(file, base, context, scenarios)
        orgs[org_id] = context

    if issues:
        raise ConfigError(issues)
    return EngineConfig(path=path, file=parsed, orgs=orgs, secrets=store)


def _state_dir(path: Path, configured: Path | None) -> Path:
    """The config's ``state_dir`` (relative to the config file), default ``.state`` beside it."""
    return (path.parent / (configured if configured is not None else ".state")).resolve()


def _secret_issues(file: str, base: str, org: OrgContext, scenarios: Mapping[str, Scenario]) -> list[ConfigIssue]:
    """Production only: every secret an enabled plugin declares is set, long and not a published value."""
    issues = []
    for name in org.plugins:
        scenario = scenarios.get(name)
        if scenario is None or (name, None) not in org._settings:
            continue
        settings = org._settings[(name, None)]
        for spec in scenario.secrets:
            variable = env_name(spec, settings)
            found = problem(spec, os.environ.get(variable))
            if found is None:
                continue
            key = f"{base}.settings.{name}.{spec.env_setting}" if spec.env_setting else f"{base}.plugins"
            issues.append(ConfigIssue(
                file, key, f"environment variable {variable} to hold a random secret of at least {MIN_LENGTH} "
                           f"characters ({spec.description or name})", found,
                f"export {variable}=$({GENERATE_HINT}); to rotate, move the old value to "
                f"{variable}{PREVIOUS_SUFFIX} (README: Security)"))
    return issues


def load_config(path: Path, scenarios: Mapping[str, Scenario]) -> EngineConfig:
    """Read and validate ``path``; raise :class:`ConfigError` with every issue found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(path), "(file)", "a readable TOML file", "no such file",
                                       "check the path given to --config")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([ConfigIssue(str(path), "(syntax)", "valid TOML", str(error),
                                       "fix the syntax at the position shown")]) from None
    return parse_config(data, path.resolve(), scenarios)
