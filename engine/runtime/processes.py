"""The engine's long-running processes: ``engine dev`` (all in one), ``engine worker``, ``engine ingress``.

In production the worker and the ingress are separate processes pointed at a Temporal cluster and
scaled horizontally; ``engine dev`` runs both plus an embedded Temporal server and, when no Feishu
credentials are configured, the local Feishu stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import EngineConfig
from engine.plugins import PluginSet
from engine.runtime.app import EngineApp, set_current_app

if TYPE_CHECKING:
    from engine.feishu.ingress import EventPipeline

log = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass
class DevOptions:
    state_dir: Path
    ingress_port: int | None = None
    temporal_port: int | None = None
    standin_port: int = 9100
    standin_seeds: tuple[Path, ...] = ()
    long_connection: bool = False  # events over Feishu's long connection even if ingress.mode is "webhook"


class StartupCheckError(Exception):
    """Something the engine refuses to start with (a template that does not render)."""


def check_templates(app: EngineApp) -> None:
    """Render every template (and each organization's overrides) with its sample before serving anything.

    Templates render in the activity that sends, so without this a syntax error or an undefined
    variable would only show when a reminder is due, possibly months after a deployment.
    """
    problems = [str(error) for error in app.templates.check_all()]
    for org in app.config.orgs.values():
        if org.templates_dir is not None:
            problems += [str(error) for error in app.templates.check_all(override_dir=org.templates_dir)]
    problems = list(dict.fromkeys(problems))  # an override check renders the plugins' own templates again
    if problems:
        raise StartupCheckError(f"{len(problems)} template(s) do not render:\n" +
                                "\n".join(f"  {problem}" for problem in problems))


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve_ingress(app: EngineApp, router: Any, host: str,
                         port: int) -> tuple[Any, asyncio.Task[Any], EventPipeline]:
    import uvicorn

    from engine.feishu.guard import GuardLimits, raise_file_limit, uvicorn_config
    from engine.feishu.ingress import build_ingress
    from engine.runtime.identity import learn_bot_open_id
    from engine.runtime.pages import plugin_routes

    # without it a mention of the bot is not recognised, and every "@bot" command would be dropped
    bot = await learn_bot_open_id(app)
    asgi = build_ingress(app.config, router, extra_routes=plugin_routes(app), bot_open_id=bot)
    # each connection holds a file descriptor: the default soft limit (often 1,024) is what ran out
    limits = GuardLimits.from_settings(app.config.ingress, file_limit=raise_file_limit())
    server = uvicorn.Server(uvicorn_config(asgi, limits, backlog=app.config.ingress.backlog, host=host, port=port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # surfaces the bind error
        await asyncio.sleep(0.05)
    return server, task, asgi.state.pipeline


async def _start_worker(app: EngineApp, client: Any) -> tuple[Any, asyncio.Task[Any]]:
    from engine.runtime.search_attributes import SearchAttributeError, ensure_search_attributes
    from engine.runtime.worker import build_worker, engine_activities

    try:
        added = await ensure_search_attributes(client, app.plugins.search_attributes())
    except SearchAttributeError as error:
        raise StartupCheckError(str(error)) from error
    if added:
        log.info("registered search attribute(s) %s on namespace %s", ", ".join(added), client.namespace)
    temporal = app.config.temporal
    worker = build_worker(client, app.plugins, engine_activities(app), task_queue=temporal.task_queue,
                          max_concurrent_workflow_tasks=temporal.max_concurrent_workflow_tasks)
    task = asyncio.create_task(worker.run())
    return worker, task


async def _announce_calendar_gaps(app: EngineApp, client: Any) -> None:
    """Log the provisional calendar dates ahead and notify admins once per year (engine/notices/calendar.py)."""
    from datetime import UTC, datetime

    from engine.notices.calendar import announce_calendar_gaps

    await announce_calendar_gaps(client, app.config, task_queue=app.config.temporal.task_queue,
                                 now=datetime.now(UTC))


async def _subscribe_approvals(app: EngineApp, say: Say) -> None:
    """Subscribe the app to every approval definition the config names (Feishu pushes their events only
    then); a refusal is said and logged, and dev starts anyway (`engine approvals subscribe` retries)."""
    from engine.approval_codes import configured_approval_codes
    from engine.feishu.errors import FeishuError

    for code in configured_approval_codes(app.config):
        try:
            await app.feishu.subscribe_approval(code)
        except FeishuError as error:
            log.warning("approval definition %s: subscription refused: %s", code, error)
            say(f"  approvals         {code}: subscription refused ({error}); see `engine approvals subscribe`")
            continue
        say(f"  approvals         {code}: subscribed to its events")


CONNECT_PATIENCE = 120.0
"""Seconds a starting process waits for Temporal before it gives up."""


async def _connect(config: EngineConfig, address: str | None = None, *,
                   patience: float = CONNECT_PATIENCE, codec: Any = None) -> Any:
    """The process's Temporal client, waiting (with backoff) while Temporal is not reachable yet.

    A worker or an ingress may start while Temporal restarts (a rollout, a crash and its supervisor's
    restart): it waits for it, one warning per attempt, instead of exiting; after ``patience`` seconds the
    last connection error is raised.
    """
    from engine.runtime.worker import connect

    t = config.temporal
    target = address or t.address
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay = 0.5
    while True:
        try:
            return await connect(target, t.namespace, tls=t.tls, codec=codec)
        except (RuntimeError, OSError) as error:  # temporalio: RuntimeError("Failed client connect: ...")
            if loop.time() + delay > deadline:
                raise
            log.warning("Temporal at %s is not reachable (%s); trying again in %.1f s", target,
                        str(error).splitlines()[0][:200], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _payload_codec(config: EngineConfig) -> Any:
    """The production processes' codec; without configured keys, a warning and plain payloads."""
    from engine.codec import payload_codec

    codec = payload_codec(config)  # CodecKeyError: the CLI shows its problem and hint
    if codec is None:
        log.warning("payloads are stored in Temporal unencrypted: set [temporal] payload_keys (README: Security)")
    return codec


def _dev_codec(config: EngineConfig, state_dir: Path) -> tuple[Any, str]:
    """``engine dev``'s codec and codec-endpoint token: the configured ones, else its own in the state dir."""
    import secrets

    from engine.codec import EncryptionCodec, dev_keys, payload_codec, write_private

    codec = payload_codec(config, state_dir) or EncryptionCodec.from_text(dev_keys(state_dir))
    settings = config.temporal.codec_server
    if settings.token is not None:
        return codec, settings.token.resolve()
    token_file = state_dir / "codec-token"
    write_private(token_file, secrets.token_urlsafe(32) + "\n")
    return codec, token_file.read_text(encoding="utf-8").strip()


async def _serve_codec(codec: Any, token: str, host: str, port: int,
                       cors_origins: list[str]) -> tuple[Any, asyncio.Task[Any], int]:
    import uvicorn

    from engine.codec_server import build_codec_app

    app = build_codec_app(codec, token, cors_origins)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                           access_log=False))  # the capability URL holds the token
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
    return server, task, bound


async def run_codec_server(codec: Any, token: str, host: str, port: int, cors_origins: list[str],
                           say: Say) -> None:
    """``engine codec-server``: the codec endpoint alone, until SIGINT/SIGTERM."""
    stop = _stop_event()
    server, task, bound = await _serve_codec(codec, token, host, port, cors_origins)
    say(f"codec endpoint on http://{host}:{bound} (POST /encode, /decode; Authorization: Bearer <token>)")
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await task


def _router(app: EngineApp, client: Any) -> Any:
    from engine.runtime.fairness import FairDispatcher
    from engine.runtime.router import Router, feishu_reply_sender

    router = Router(client, app.plugins, task_queue=app.config.temporal.task_queue,
                    send_reply=feishu_reply_sender(app))
    # one chat's (or one sender's) flood queues behind itself, not in front of everyone else
    ingress = app.config.ingress
    return FairDispatcher(router, per_chat=ingress.dispatches_per_chat, per_user=ingress.dispatches_per_user,
                          max_waiting=ingress.dispatch_queue)


async def run_dev(config: EngineConfig, plugins: PluginSet, options: DevOptions, say: Say,
                  ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Embedded Temporal + worker + ingress (+ the Feishu stand-in) until SIGINT/SIGTERM or ``stop``."""
    from engine.runtime.identity import learn_bot_open_id
    from engine.runtime.schedules import sync_schedules
    from engine.runtime.server import EmbeddedTemporal

    stop = stop or _stop_event()
    state_dir = options.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    cleanups: list[Callable[[], Any]] = []
    app = EngineApp(config=config, plugins=plugins)
    check_templates(app)
    _prepare_dev_secrets(config, state_dir, say)
    try:
        standin = None
        if config.feishu is None and "FEISHU_APP_ID" not in os.environ:
            from engine.feishu.standin import FeishuStandIn

            say("starting the local Feishu stand-in (no Feishu credentials configured) ...")
            # the stand-in's state survives restarts; the sample data seeds it only the first time
            state_file = state_dir / "feishu-standin.json"
            fresh = not state_file.exists()
            tenants = [org.tenant_key for org in config.orgs.values() if org.tenant_key]
            standin = FeishuStandIn(state_file=state_file, tenant_key=tenants[0] if tenants else "t_standin")
            for org in config.orgs.values():  # the outbox page names each organization and shows its zone
                if org.tenant_key:
                    standin.add_tenant(org.tenant_key, name=org.name or org.id, timezone=org.timezone,
                                       plugins=org.plugins)
            if fresh:
                for seed in options.standin_seeds:
                    standin.state.merge_json(json.loads(seed.read_text(encoding="utf-8")))
                    say(f"  seeded            {seed.name}")
            await standin.start(port=options.standin_port)
            cleanups.append(standin.stop)
            # the documented FEISHU_* overrides point this process's Feishu client at the stand-in
            os.environ.update({"FEISHU_APP_ID": standin.app_id, "FEISHU_APP_SECRET": standin.app_secret,
                               "FEISHU_VERIFICATION_TOKEN": standin.verification_token or "",
                               "FEISHU_BASE_URL": standin.base_url})
            if standin.encrypt_key:
                os.environ["FEISHU_ENCRYPT_KEY"] = standin.encrypt_key
            app.feishu_base_url = standin.base_url
            say(f"  Feishu stand-in   {standin.base_url}   (outbox: {standin.base_url}/_standin/)")
        # asked of Feishu (or the stand-in) as in production: GET /open-apis/bot/v3/info
        bot = await learn_bot_open_id(app, say=say)

        codec, token = _dev_codec(config, state_dir)
        codec_settings = config.temporal.codec_server
        # an explicit port from the config, else any free one (several dev instances on one machine)
        codec_port = codec_settings.port if "port" in codec_settings.model_fields_set else 0
        ui_port = config.temporal.ui_port
        if ui_port is None:
            ui_port = (options.temporal_port or int(config.temporal.address.rsplit(":", 1)[1])) + 1000
        origins = [*codec_settings.cors_origins, f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"]
        codec_server, codec_task, codec_bound = await _serve_codec(codec, token, codec_settings.host, codec_port,
                                                                   origins)
        cleanups.append(lambda: _stop_uvicorn(codec_server, codec_task, None))
        codec_url = f"http://{codec_settings.host}:{codec_bound}"
        say(f"  codec endpoint    {codec_url}   (token in {state_dir / 'codec-token'}; README: Security)")

        address = None
        if config.temporal.mode == "embedded":
            port = options.temporal_port or int(config.temporal.address.rsplit(":", 1)[1])
            # the dev Web UI decodes through the capability URL (the token as the path's first segment)
            server = EmbeddedTemporal(state_dir, port=port, ui_port=ui_port, namespace=config.temporal.namespace,
                                      ui_codec_endpoint=f"{codec_url}/{token}")
            say(f"starting the embedded Temporal server (state: {server.db_file}) ...")
            await server.start()
            cleanups.append(server.stop)
            address = server.address
            say(f"  Temporal          {server.address}   (Web UI: {server.ui_url})")

        client = await _connect(config, address, codec=codec)
        app.temporal = client
        set_current_app(app)
        cleanups.append(lambda: set_current_app(None))
        report = await sync_schedules(client, config, plugins, task_queue=config.temporal.task_queue)
        synced = sum(len(report[k]) for k in ("created", "updated"))
        refused = f", {len(report['refused'])} refused (see the log)" if report["refused"] else ""
        say(f"  schedules         {synced} synchronized, {len(report['deleted'])} removed{refused}")
        worker, worker_task = await _start_worker(app, client)
        cleanups.append(worker.shutdown)
        say(f"  worker            task queue {config.temporal.task_queue!r}, "
            f"{len(plugins.workflows())} workflow types, plugins: {', '.join(sorted(plugins.scenarios)) or 'none'}")

        await _announce_calendar_gaps(app, client)
        await _subscribe_approvals(app, say)

        for schedule_id in report["dev_start"]:
            await client.get_schedule_handle(schedule_id).trigger()
            say(f"  triggered         {schedule_id} (runs once at dev start)")

        router = _router(app, client)
        port = options.ingress_port if options.ingress_port is not None else config.ingress.port
        server_, ingress_task, pipeline = await _serve_ingress(app, router, config.ingress.host, port)
        cleanups.append(lambda: _stop_uvicorn(server_, ingress_task, pipeline))
        bound = server_.servers[0].sockets[0].getsockname()[1] if server_.servers else port
        say(f"  ingress           http://{config.ingress.host}:{bound}   (GET /healthz, POST /feishu/events)")
        if options.long_connection or config.ingress.mode == "long_connection":
            connection = _start_long_connection(config, router, bot)
            cleanups.append(lambda: asyncio.to_thread(connection.stop))
            say(f"  long connection   to {connection.domain} (events arrive over it)")
        elif standin is not None:
            # POST /_standin/deliver pushes events here, signed like Feishu (see README, "Try it")
            standin.event_url = f"http://{config.ingress.host}:{bound}/feishu/events"
        from engine.runtime import devsession

        feishu_env = {key: os.environ[key] for key in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_BASE_URL",
                                                       "FEISHU_VERIFICATION_TOKEN", "FEISHU_ENCRYPT_KEY")
                      if standin is not None and os.environ.get(key)}
        # beside the config's own state dir, where the commands run against the config look (--state-dir
        # moves dev's data, not the file that says where dev is)
        session_dir = config.state_dir()
        session_dir.mkdir(parents=True, exist_ok=True)
        devsession.write(session_dir, devsession.DevSession(
            pid=os.getpid(), config=str(config.path), temporal_address=address or config.temporal.address,
            ingress_url=f"http://{config.ingress.host}:{bound}", state_dir=str(state_dir), feishu_env=feishu_env,
            standin_url=standin.base_url if standin is not None else None))
        cleanups.append(lambda: devsession.remove(session_dir))
        say("engine dev is running; press Ctrl+C to stop")
        if ready is not None:
            ready.set()
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({waiter, worker_task, ingress_task}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter:
                task.result()  # a crashed worker or ingress stops dev with its error
        waiter.cancel()
        say("stopping ...")
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                result = cleanup()
                if asyncio.iscoroutine(result):
                    await asyncio.wait_for(result, 20)


def _prepare_dev_secrets(config: EngineConfig, state_dir: Path, say: Say) -> None:
    """Without a [feishu] table: random secrets for the unset variables, kept in the state dir (restarts keep links)."""
    from engine.secrets import DEV_FILE, ensure_dev_secrets

    store = config.secrets
    if store is None or store.production:
        return
    store.dev_file = state_dir / DEV_FILE
    unset = [name for name in config.secret_variables() if not os.environ.get(name, "").strip()]
    if unset:
        ensure_dev_secrets(store.dev_file, unset)
        say(f"  secrets           {', '.join(unset)}: development values in {store.dev_file}")


def _start_long_connection(config: EngineConfig, router: Any, bot: str | None) -> Any:
    """Open Feishu's long connection (its own thread) dispatching to ``router`` on this loop."""
    from engine.feishu.longconn import LongConnection

    connection = LongConnection(config, router, asyncio.get_running_loop(), bot_open_id=bot)
    connection.start()
    return connection


async def _stop_uvicorn(server: Any, task: asyncio.Task[Any], pipeline: EventPipeline | None) -> None:
    server.should_exit = True
    await task
    if pipeline is not None:
        await pipeline.drain()  # dispatches that ran over their budget, answered 503 but still under way


async def run_worker(config: EngineConfig, plugins: PluginSet, say: Say) -> None:
    """A worker process: every installed plugin's workflows and activities, until SIGINT/SIGTERM."""
    from engine.runtime.identity import BotIdentityError, learn_bot_open_id
    from engine.runtime.schedules import sync_schedules

    stop = _stop_event()
    app = EngineApp(config=config, plugins=plugins)
    check_templates(app)  # before anything else: a broken template must stop a deployment at once
    set_current_app(app)
    try:  # for activities that tell the bot's own messages apart; the worker routes no events
        await learn_bot_open_id(app, say=say)
    except BotIdentityError as error:
        log.warning("worker starts without the bot's identity: %s (%s)", error, error.hint)
    client = app.temporal = await _connect(config, codec=_payload_codec(config))
    report = await sync_schedules(client, config, plugins, task_queue=config.temporal.task_queue)
    if report["refused"]:
        say(f"{len(report['refused'])} schedule(s) refused, the others run: see the log")
    worker, task = await _start_worker(app, client)
    await _announce_calendar_gaps(app, client)
    say(f"worker running on {config.temporal.address}, task queue {config.temporal.task_queue!r}")
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    await worker.shutdown()
    if task.done():
        task.result()


async def run_ingress(config: EngineConfig, plugins: PluginSet, say: Say, port: int | None = None) -> None:
    """An ingress process: webhook (or long connection) → router → Temporal, until SIGINT/SIGTERM."""
    from engine.runtime.identity import learn_bot_open_id

    stop = _stop_event()
    app = EngineApp(config=config, plugins=plugins)
    check_templates(app)  # the ingress renders replies (a device's status, a missing one)
    set_current_app(app)
    bot = await learn_bot_open_id(app, say=say)  # before Temporal: a wrong app secret stops it at once
    client = app.temporal = await _connect(config, codec=_payload_codec(config))
    router = _router(app, client)
    connection = None
    if config.ingress.mode == "long_connection":
        connection = _start_long_connection(config, router, bot)
        say("long connection to Feishu started")
    server, task, pipeline = await _serve_ingress(app, router, config.ingress.host,
                                        port if port is not None else config.ingress.port)
    say(f"ingress listening on http://{config.ingress.host}:{port or config.ingress.port}")
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if connection is not None:
        await asyncio.to_thread(connection.stop)
    await _stop_uvicorn(server, task, pipeline)
