"""The ``engine`` command line.

Errors are one clear line plus a hint, never a traceback (``ENGINE_DEBUG=1`` shows it). Heavy imports
(temporalio's client, lark-oapi) happen inside the commands that need them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from engine.config import ConfigError, EngineConfig, load_config
from engine.plugins import PluginSet, load_plugins

F = TypeVar("F", bound=Callable[..., Any])

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "examples" / "engine.toml"
CONFIG_ENV = "ENGINE_CONFIG"
TEMPLATE_HINT = "fix the template; `engine templates render PLUGIN:NAME` renders it with its sample"


class Fail(click.ClickException):
    """One line of error and a hint; exits 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message + (f"\n  hint: {hint}" if hint else ""))


@dataclass
class CliState:
    """What every command may need; loaded lazily so `engine --help` stays instant."""

    config_path: Path | None = None
    _plugins: PluginSet | None = None
    _config: EngineConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    plugin_commands: dict[str, click.Command] | None = None

    @property
    def plugins(self) -> PluginSet:
        if self._plugins is None:
            self._plugins = load_plugins()
        return self._plugins

    def config(self) -> EngineConfig:
        if self._config is None:
            path = self.config_path or Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG))
            try:
                self._config = load_config(path, self.plugins.scenarios)
            except ConfigError as error:
                raise Fail(f"{len(error.issues)} problem(s) in the config:\n" + "\n".join(
                    f"  {issue}" for issue in error.issues), "run `engine config check FILE`") from None
            allow = self._config.file.plugins.load
            if allow is not None:
                self._plugins = load_plugins(allow=allow)
        return self._config


pass_app = click.make_pass_decorator(CliState, ensure=True)


def run_async(function: F) -> F:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return asyncio.run(function(*args, **kwargs))
        except KeyboardInterrupt:
            return None

    return wrapper  # type: ignore[return-value]


def _say(text: str) -> None:
    click.echo(text, err=False)


# Command groups kept in their own modules (which import this one), loaded when named.
LAZY_COMMANDS = {"send": "engine.cli_send:send", "approvals": "engine.cli_approvals:approvals"}


class EngineGroup(click.Group):
    """Adds the plugins' commands (``register_commands``) when the command line is built."""

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        # Collected per invocation into a scratch group, never into this module-level one: which plugins
        # load depends on the environment and the config, and may differ from one invocation to the next.
        state = ctx.ensure_object(CliState)
        if state.plugin_commands is None:
            scratch = click.Group("plugins")
            state.plugins.pm.hook.register_commands(cli=scratch)
            state.plugin_commands = {name: command for name, command in scratch.commands.items()
                                     if name not in self.commands}
        return state.plugin_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS, *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            command = getattr(importlib.import_module(module), attribute)
        if command is None:
            command = self._plugin_commands(ctx).get(name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as error:
            if os.environ.get("ENGINE_DEBUG"):
                raise
            hint = getattr(error, "hint", None)
            if isinstance(hint, str) and hint:  # an error that knows what to do about it
                raise Fail(str(error), hint) from None
            raise Fail(f"{type(error).__name__}: {error}", "set ENGINE_DEBUG=1 to see the traceback") from None


@click.group(cls=EngineGroup)
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help=f"Organization config (TOML). Default: ${CONFIG_ENV} or examples/engine.toml.")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.version_option(package_name="feishu-ops-engine")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: bool) -> None:
    """Run hospital and medical-device operations on Feishu with Temporal workflows."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = ctx.ensure_object(CliState)
    state.config_path = config_path


# ------------------------------------------------------------------------------------------ processes


def _config_option(function: F) -> F:
    """`--config` accepted after the subcommand too (`engine dev --config FILE`)."""

    def set_config(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
        if value is not None:
            ctx.ensure_object(CliState).config_path = value

    return click.option("--config", type=click.Path(path_type=Path), expose_value=False, callback=set_config,
                        is_eager=True, help="Organization config (TOML).")(function)


@cli.command()
@_config_option
@click.option("--state-dir", type=click.Path(path_type=Path), default=None,
              help="Where Temporal's SQLite file and the stand-in's state live (default: .state beside the config).")
@click.option("--port", type=int, default=None, help="Ingress port (default: the config's ingress.port).")
@click.option("--temporal-port", type=int, default=None, help="Embedded Temporal gRPC port (UI: +1000).")
@click.option("--standin-port", type=int, default=9100, show_default=True,
              help="Port of the local Feishu stand-in (0: any free port).")
@click.option("--long-connection", is_flag=True,
              help='Take events over Feishu\'s long connection (as ingress.mode = "long_connection" does).')
@pass_app
@run_async
async def dev(state: CliState, state_dir: Path | None, port: int | None, temporal_port: int | None,
              standin_port: int, long_connection: bool) -> None:
    """Run everything locally: embedded Temporal, worker, ingress and (without credentials) the stand-in."""
    from engine.codec import CodecKeyError
    from engine.runtime.identity import BotIdentityError
    from engine.runtime.processes import DevOptions, StartupCheckError, run_dev
    from engine.runtime.server import ServerError

    config = state.config()
    seeds = tuple(config.path.parent / seed for seed in config.file.dev.standin_seeds)
    options = DevOptions(state_dir=config.state_dir(state_dir), ingress_port=port, temporal_port=temporal_port,
                         standin_port=standin_port, standin_seeds=seeds, long_connection=long_connection)
    _say(f"engine dev: config {config.path}, organizations: {', '.join(config.orgs)}")
    try:
        await run_dev(config, state.plugins, options, _say)
    except ServerError as error:
        raise Fail(str(error), "pass --temporal-port, or stop the process holding the port") from None
    except StartupCheckError as error:
        raise Fail(str(error), TEMPLATE_HINT) from None
    except BotIdentityError as error:
        raise Fail(str(error), error.hint) from None
    except CodecKeyError as error:
        raise Fail(error.problem, error.hint) from None
    except OSError as error:
        raise Fail(str(error), "is another engine already running? pass --port / --temporal-port") from None


@cli.command()
@_config_option
@pass_app
@run_async
async def worker(state: CliState) -> None:
    """Run a Temporal worker with every installed plugin (production process)."""
    from engine.codec import CodecKeyError
    from engine.runtime.processes import StartupCheckError, run_worker

    try:
        await run_worker(state.config(), state.plugins, _say)
    except StartupCheckError as error:
        raise Fail(str(error), TEMPLATE_HINT) from None
    except CodecKeyError as error:
        raise Fail(error.problem, error.hint) from None


@cli.command()
@_config_option
@click.option("--port", type=int, default=None, help="Listen port (default: the config's ingress.port).")
@pass_app
@run_async
async def ingress(state: CliState, port: int | None) -> None:
    """Run the Feishu ingress: webhook or long connection → router → Temporal (production process)."""
    from engine.codec import CodecKeyError
    from engine.runtime.identity import BotIdentityError
    from engine.runtime.processes import StartupCheckError, run_ingress

    try:
        await run_ingress(state.config(), state.plugins, _say, port=port)
    except StartupCheckError as error:
        raise Fail(str(error), TEMPLATE_HINT) from None
    except BotIdentityError as error:
        raise Fail(str(error), error.hint) from None
    except CodecKeyError as error:
        raise Fail(error.problem, error.hint) from None


@cli.command("codec-server")
@_config_option
@click.option("--port", type=int, default=None, help="Listen port (default: the config's temporal.codec_server.port).")
@pass_app
@run_async
async def codec_server(state: CliState, port: int | None) -> None:
    """Serve the payload codec to the Web UI and `temporal --codec-endpoint` (needs a token; README: Security)."""
    from engine.runtime.processes import run_codec_server

    config = state.config()
    settings = config.temporal.codec_server
    if settings.token is None:
        raise Fail(f"{config.path}: temporal.codec_server.token is not set",
                   'add token = { env = "ENGINE_CODEC_TOKEN" } under [temporal.codec_server] and export it')
    from engine.codec import CodecKeyError, payload_codec

    try:
        codec = payload_codec(config)
    except CodecKeyError as error:
        raise Fail(error.problem, error.hint) from None
    if codec is None:
        raise Fail(f"{config.path}: no payload keys to decode with", "set [temporal] payload_keys")
    await run_codec_server(codec, settings.token.resolve(), settings.host,
                           port if port is not None else settings.port, settings.cors_origins, _say)


@cli.command()
@click.option("--port", type=int, default=9100, help="Port to listen on.")
@click.option("--state", "state_file", type=click.Path(path_type=Path), default=None,
              help="JSON file to load the stand-in's state from and save it to.")
def standin(port: int, state_file: Path | None) -> None:
    """Run the local Feishu stand-in on loopback (what tests and `engine dev` talk to)."""
    from engine.feishu.standin import FeishuStandIn

    FeishuStandIn(state_file=state_file).serve_forever("127.0.0.1", port)


# -------------------------------------------------------------------------------------------- plugins


@cli.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def plugins_list(state: CliState, as_json: bool) -> None:
    """Each plugin with its version, hooks, workflows and the organizations that enabled it."""
    plugin_set = state.plugins
    try:
        config: EngineConfig | None = state.config()
    except Fail:
        config = None  # still list plugins when the config is broken
    rows = []
    for name, record in sorted(plugin_set.records.items()):
        scenarios = [plugin_set.scenarios[s] for s in record.scenarios if s in plugin_set.scenarios]
        workflows = sorted(_type_name(w) for s in scenarios for w in s.workflows)
        orgs = sorted(o.id for o in (config.orgs.values() if config else []) if set(o.plugins) & set(record.scenarios))
        rows.append({"name": name, "version": record.version, "module": record.module, "hooks": record.hooks,
                     "scenarios": record.scenarios, "workflows": workflows, "organizations": orgs,
                     "error": record.error})
    if as_json:
        _say(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        status = f"FAILED: {row['error']}" if row["error"] else f"v{row['version']}"
        _say(f"{row['name']}  {status}")
        if not row["error"]:
            _say(f"  hooks:         {', '.join(row['hooks']) or '-'}")
            _say(f"  workflows:     {', '.join(row['workflows']) or '-'}")
            _say(f"  organizations: {', '.join(row['organizations']) or '-'}")


def _type_name(workflow_class: type) -> str:
    from temporalio import workflow

    return workflow._Definition.must_from_class(workflow_class).name


# --------------------------------------------------------------------------------------------- config


@cli.group("config")
def config_group() -> None:
    """Check the organization config and show effective settings."""


@config_group.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@pass_app
def config_check(state: CliState, file: Path) -> None:
    """Report every error in FILE at once (file, dotted key, expected, found); exit 1 if any.

    Warnings (dates ahead without an official holiday calendar) are printed after OK and do not fail it.
    """
    try:
        config = load_config(file, state.plugins.scenarios)
    except ConfigError as error:
        for issue in error.issues:
            click.echo(str(issue), err=True)
        click.echo(f"{len(error.issues)} problem(s) found in {file}", err=True)
        sys.exit(1)
    sites = sum(len(o.config.sites) for o in config.orgs.values())
    _say(f"{file}: OK ({len(config.orgs)} organization(s), {sites} site(s))")
    # Not an error: the engine runs on a provisional calendar, but people must know and can fix it.
    from datetime import UTC, datetime

    from engine.calendar_gaps import calendar_gaps

    for gap in calendar_gaps(config, datetime.now(UTC)):
        _say(f"warning: {gap.warning()}\n  hint: {gap.hint()}")
    if config.feishu is not None and config.temporal.payload_keys is None:  # production without encryption
        _say(f"warning: {file}: temporal.payload_keys is not set: workflow data (patients, contacts) is stored "
             "in Temporal in plain text\n  hint: payload_keys = { env = \"ENGINE_PAYLOAD_KEYS\" } under [temporal] "
             "(README: Security)")


@config_group.command("show")
@_config_option
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.option("--site", default=None, help="Site id (default: the group's standard).")
@click.option("--plugin", "scenario", default=None, help="Only this plugin's settings.")
@pass_app
def config_show(state: CliState, org_id: str, site: str | None, scenario: str | None) -> None:
    """Print the effective settings of an organization or one of its sites (secrets are never printed)."""
    config = state.config()
    if org_id not in config.orgs:
        raise Fail(f"no organization {org_id!r} in {config.path}", f"known: {', '.join(config.orgs)}")
    org = config.orgs[org_id]
    if site is not None and site not in org.config.sites:
        raise Fail(f"organization {org_id!r} has no site {site!r}", f"known: {', '.join(org.config.sites) or 'none'}")
    locale = (org.config.sites[site].locale if site is not None else None) or org.locale  # the site's own first
    out = {"organization": org.id, "site": site, "timezone": str(org.site_zone(site).key), "locale": locale,
           "plugins": {}}
    for name in org.plugins:
        if scenario is None or name == scenario:
            out["plugins"][name] = org.settings(name, site).model_dump(mode="json")
    _say(json.dumps(out, ensure_ascii=False, indent=2))


# ------------------------------------------------------------------------------------------ templates


@cli.group()
def templates() -> None:
    """Render plugin templates."""


@templates.command("render")
@click.argument("plugin")
@click.argument("name", required=False)
@click.option("--context", "context_file", type=click.Path(exists=True, path_type=Path), default=None,
              help="JSON context (default: the template's shipped sample).")
@click.option("--locale", default="zh_CN", type=click.Choice(["zh_CN", "en_US"]))
@click.option("--tz", default="Asia/Shanghai", help="Timezone for date filters.")
@pass_app
def templates_render(state: CliState, plugin: str, name: str | None, context_file: Path | None, locale: str,
                     tz: str) -> None:
    """Print a template rendered (cards as formatted JSON): PLUGIN:NAME as `templates list` prints it, or
    PLUGIN NAME."""
    from engine.templates import TemplateEngine, TemplateError

    engine = TemplateEngine(state.plugins.template_dirs(), state.plugins.template_filters())
    if name is None and ":" not in plugin:
        raise Fail(f"{plugin}: which template? give PLUGIN:NAME", "`engine templates list` shows the names")
    full = plugin if name is None else f"{plugin}:{name}"
    try:
        context = (json.loads(context_file.read_text(encoding="utf-8")) if context_file
                   else engine.sample_context(full))
        message = engine.render_message(full, context, locale=locale, tz=tz)
    except TemplateError as error:
        raise Fail(str(error), "`engine templates list` shows the names") from None
    if message.msg_type == "text":
        _say(json.loads(message.content)["text"])
    else:
        _say(json.dumps(json.loads(message.content), ensure_ascii=False, indent=2))


@templates.command("list")
@pass_app
def templates_list(state: CliState) -> None:
    """Every template name, ``plugin:name``."""
    from engine.templates import TemplateEngine

    for name in TemplateEngine(state.plugins.template_dirs(), state.plugins.template_filters()).names():
        _say(name)


# ------------------------------------------------------------------------------------------ workflows


@cli.group()
def workflows() -> None:
    """List and inspect running workflows."""


@workflows.command("list")
@_config_option
@click.option("--org", default=None)
@click.option("--plugin", "scenario", default=None)
@click.option("--status", type=click.Choice(["running", "completed", "failed", "terminated", "canceled",
                                             "continued_as_new", "timed_out"]), default=None)
@click.option("--limit", default=200, show_default=True)
@pass_app
@run_async
async def workflows_list(state: CliState, org: str | None, scenario: str | None, status: str | None,
                         limit: int) -> None:
    """Workflows of the engine, newest first, with their status."""
    from engine.runtime.worker import connect_config

    config = state.config()
    client = await connect_config(config)
    clauses = []
    if status:
        clauses.append(f"ExecutionStatus = '{''.join(p.capitalize() for p in status.split('_'))}'")
    count = 0
    async for execution in client.list_workflows(" AND ".join(clauses) or None):
        # ids are {org}:{scenario}:{key}
        if org and not execution.id.startswith(f"{org}:"):
            continue
        if scenario and execution.id.split(":", 2)[1:2] != [scenario]:
            continue
        status_name = execution.status.name.lower() if execution.status else "?"
        _say(f"{execution.id}  {execution.workflow_type}  {status_name}  started {execution.start_time:%Y-%m-%d %H:%M}")
        count += 1
        if count >= limit:
            break
    if not count:
        _say("no workflows match")


@workflows.command("show")
@_config_option
@click.argument("workflow_id")
@click.option("--query", "query_name", default="state", show_default=True, help="Query to ask the workflow.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
@run_async
async def workflows_show(state: CliState, workflow_id: str, query_name: str, as_json: bool) -> None:
    """The workflow's state (from its query; a closed one's result), human-readable."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowQueryFailedError
    from temporalio.service import RPCError

    from engine.codec import PayloadDecryptionError
    from engine.dormant import query_running
    from engine.runtime.worker import connect_config

    config = state.config()
    client = await connect_config(config)
    handle = client.get_workflow_handle(workflow_id)
    data: Any = None
    try:
        description = await handle.describe()
        status = description.status or WorkflowExecutionStatus.RUNNING
        try:
            result = await query_running(client, workflow_id, query_name)  # wakes a dormant one (engine.dormant)
            dump = getattr(result, "model_dump", None)
            data = {query_name: dump(mode="json") if callable(dump) else result}
        except WorkflowQueryFailedError as error:
            if status == WorkflowExecutionStatus.RUNNING:
                raise Fail(f"{workflow_id}: query {query_name!r} failed: {error}",
                           "`--query NAME` asks another of its queries") from None
            data = {}  # a closed workflow without that query: its result says how it ended
        if status == WorkflowExecutionStatus.COMPLETED and not data:
            data = {"result": await handle.result()}
    except RPCError as error:
        hint = ("`engine workflows list` shows the ids" if "not found" in error.message.lower()
                else "`engine workflows list --status running` shows the running ones")
        raise Fail(f"{workflow_id}: {error.message}", hint) from None
    except (KeyError, PayloadDecryptionError) as error:  # encrypted with keys this command does not have
        raise Fail(f"{workflow_id}: its data cannot be decrypted: {error}",
                   "run with the config (and its state_dir) of the engine that wrote it, or with its "
                   "payload_keys") from None
    status_name = status.name.lower()
    if as_json:
        _say(json.dumps({"workflow_id": workflow_id, "type": description.workflow_type, "status": status_name,
                         **data}, ensure_ascii=False, indent=2, default=str))
        return
    _say(f"{workflow_id}")
    _say(f"  type     {description.workflow_type}")
    _say(f"  status   {status_name}")
    if description.start_time:
        _say(f"  started  {description.start_time:%Y-%m-%d %H:%M:%S} UTC")
    if description.close_time:
        _say(f"  closed   {description.close_time:%Y-%m-%d %H:%M:%S} UTC")
    for title, value in data.items():
        _say(f"{title}:")
        for line in _readable(json.loads(json.dumps(value, default=str))):
            _say("  " + line)


def _readable(value: Any, indent: str = "") -> list[str]:
    """``value`` (JSON data) as indented ``key: value`` lines; empty entries are left out."""
    if isinstance(value, dict):
        lines: list[str] = []
        for key, item in value.items():
            if item in (None, "", [], {}):
                continue
            if isinstance(item, dict | list):
                lines.append(f"{indent}{key}:")
                lines += _readable(item, indent + "  ")
            else:
                lines.append(f"{indent}{key}: {item}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict | list):
                inner = _readable(item, indent + "  ")
                if inner:
                    lines.append(f"{indent}- {inner[0].strip()}")
                    lines += inner[1:]
            else:
                lines.append(f"{indent}- {item}")
        return lines
    return [f"{indent}{value}"]


def main() -> None:
    try:
        cli(prog_name="engine")  # standalone mode: always ends in SystemExit
        code: Any = 0
    except SystemExit as done:
        code = done.code
    except BrokenPipeError:  # `engine workflows list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    # The Temporal client's runtime threads outlive the command and raced the interpreter's finalization,
    # which now and then crashed a finished command (SIGSEGV, or "Fatal Python error: PyGILState_Release").
    # Everything was awaited and printed by now: flush, close the logs, and leave without finalizing.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


if __name__ == "__main__":
    main()
