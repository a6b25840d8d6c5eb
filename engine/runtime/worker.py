"""One Temporal worker for every installed plugin's workflows and activities.

All installed plugins are registered, not just the enabled ones: a workflow that is running when its
organization switches the plugin off must still replay. Enablement is checked at the router.
"""

from __future__ import annotations

import compileall
import concurrent.futures
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.plugins import PluginSet
from engine.runtime.keepalive import KeepAlive

# Side-effect-free modules the workflow sandbox may share instead of re-importing them for every run
# (6.5x faster for a plugin workflow, TEMPORAL_NOTES.md). Plugin workflow modules themselves are still
# re-imported, so the sandbox keeps checking them.
PASSTHROUGH_MODULES = (
    "pydantic", "pydantic_core", "annotated_types", "typing_extensions",
    "jinja2", "markupsafe", "pluggy", "chinese_calendar", "holidays", "dateutil", "zoneinfo",
    "freezegun", "engine",
)


def ensure_bytecode(workflows: Sequence[type]) -> None:
    """Write the bytecode of the modules that define ``workflows``, and of their packages, if it is
    missing or stale.

    The sandbox re-imports a workflow's module for every workflow run it creates; without a ``.pyc``
    (``PYTHONDONTWRITEBYTECODE``, a fresh checkout) each re-import compiles the source again, which was a
    third of the worker's CPU per started cycle (bench/devices.py). A read-only install is left alone.
    """
    names: set[str] = set()
    for workflow in workflows:
        # the packages above the module too: the sandbox re-imports their ``__init__`` with it
        parts = workflow.__module__.split(".")
        names.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    for module_name in sorted(names):
        source = getattr(sys.modules.get(module_name), "__file__", None)
        if source and source.endswith(".py"):
            with contextlib.suppress(OSError):
                compileall.compile_file(source, quiet=2)


def workflow_runner() -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def engine_activities(app: Any) -> list[Callable[..., Any]]:
    """The engine's activities bound to ``app`` (Feishu calls, the site context, raised events), plus every
    scenario's own."""
    from engine.approval_report import ApprovalReportActivities
    from engine.context import ContextActivities
    from engine.feishu.activities import FeishuActivities
    from engine.scenario_events import EventActivities
    from engine.services import Services

    feishu = FeishuActivities(app.config, app.feishu, app.templates)
    report = ApprovalReportActivities(app.config, app.feishu)
    return [*feishu.all(), *ContextActivities(app.config).all(), *EventActivities(app).all(), *report.all(),
            *app.plugins.activities(Services.of(app))]


def build_worker(
    client: Client,
    plugins: PluginSet,
    activities: Sequence[Callable[..., Any]],
    *,
    task_queue: str,
    workflows: Sequence[type] | None = None,
    max_concurrent_activities: int = 100,
    max_concurrent_workflow_tasks: int = 8,
    interceptors: Sequence[Any] = (),
    max_cached_workflows: int = 1000,
) -> Worker:
    if workflows is None:
        from engine.approval_report import WORKFLOWS as REPORT_WORKFLOWS
        from engine.approvals import WORKFLOWS as APPROVAL_WORKFLOWS
        from engine.notices.calendar import WORKFLOWS as ENGINE_WORKFLOWS

        workflows = [*plugins.workflows(), *ENGINE_WORKFLOWS, *APPROVAL_WORKFLOWS, *REPORT_WORKFLOWS]
    workflows = list(workflows)
    ensure_bytecode(workflows)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=list(activities),
        workflow_runner=workflow_runner(),
        # plugin activities may be plain functions; Feishu activities are async
        activity_executor=concurrent.futures.ThreadPoolExecutor(max_workers=max_concurrent_activities),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        # 0 turns off sticky queues: a test that stops a worker needs its workflows to move to the next one
        max_cached_workflows=max_cached_workflows,
        # KeepAlive first: its beats must go on while the other interceptors and the activity run
        interceptors=[KeepAlive(), *interceptors],
    )


async def connect(address: str, namespace: str, *, tls: Any = None, codec: PayloadCodec | None = None) -> Client:
    """A client with the data converter every engine process uses: pydantic, encrypted by ``codec``."""
    from engine.codec import data_converter

    kwargs: dict[str, Any] = {}
    if tls is not None:
        from temporalio.service import TLSConfig

        def read(path: Any) -> bytes | None:
            return path.read_bytes() if path else None

        kwargs["tls"] = TLSConfig(
            client_cert=read(tls.client_cert), client_private_key=read(tls.client_key),
            server_root_ca_cert=read(tls.server_root_ca_cert), domain=tls.domain)
    return await Client.connect(address, namespace=namespace, data_converter=data_converter(codec), **kwargs)


async def connect_config(config: Any, address: str | None = None, *, state_dir: Any = None) -> Client:
    """The client of a command run against ``config``: its address, TLS and payload codec.

    A development config (no ``[feishu]``) reaches the ``engine dev`` running from it, on whatever port.
    Raises :class:`TemporalUnreachable` when nothing answers, :class:`engine.codec.CodecKeyError` when
    the configured payload keys are unusable.
    """
    from engine.codec import payload_codec
    from engine.runtime.devsession import running

    t = config.temporal
    session = running(config) if address is None else None
    address = address or (session.temporal_address if session else None) or t.address
    if session is not None and state_dir is None:  # its development payload keys, wherever dev keeps them
        state_dir = Path(session.state_dir)
    try:
        return await connect(address, t.namespace, tls=t.tls, codec=payload_codec(config, state_dir))
    except RuntimeError as error:  # the core's connect error: a tonic transport message
        if "connect" not in str(error).lower():
            raise
        raise TemporalUnreachable(address, config) from None


class TemporalUnreachable(ConnectionError):
    """Nothing answers at the configured Temporal address; ``hint`` says what to start."""

    def __init__(self, address: str, config: Any) -> None:
        super().__init__(f"cannot reach Temporal at {address}")
        self.hint = (f"is `engine dev` running for {config.path}? start it with `make dev`"
                     if config.temporal.mode == "embedded" and config.feishu is None
                     else "start the engine's Temporal server, or fix [temporal] address in "
                          f"{config.path}")
