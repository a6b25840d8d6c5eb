"""What the worker hands a plugin's activities: the engine's parts, passed in rather than read from a global.

A scenario lists an activity *class* in ``Scenario.activities``; the worker builds it once with
:class:`Services` and registers its ``@activity.defn`` methods. So a test builds the class with its own
parts, and two engines in one process (a test harness beside a dev server) never share one by accident.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.context import SiteContext, UnknownContext, resolve_site_context

if TYPE_CHECKING:
    from engine.config import EngineConfig, OrgContext
    from engine.feishu.client import FeishuClient


@dataclass(frozen=True)
class Services:
    """The engine's parts for plugin activities.

    ``feishu`` is the rate-limited Open API client (tokens refreshed, failures raised as
    :class:`engine.feishu.errors.FeishuError`); ``temporal`` the worker's Temporal client (to query other
    workflows), ``None`` where no worker runs; ``task_queue`` the queue workflows run on.
    """

    config: EngineConfig
    feishu: FeishuClient
    temporal: Any = None
    task_queue: str = "engine"

    def org(self, org_id: str) -> OrgContext:
        """The organization ``org_id``; :class:`engine.context.UnknownContext` when it is not configured."""
        try:
            return self.config.org(org_id)
        except KeyError as error:
            raise UnknownContext(str(error).strip("'\"")) from None

    def context(self, org_id: str, scenario: str, site: str | None = None) -> SiteContext:
        """The organization/site context of ``scenario`` (see :func:`engine.context.resolve_site_context`)."""
        return resolve_site_context(self.org(org_id), scenario, site)

    @classmethod
    def of(cls, app: Any) -> Services:
        """The services of a running engine app (worker, ingress, test harness)."""
        return cls(config=app.config, feishu=app.feishu, temporal=app.temporal,
                   task_queue=app.config.temporal.task_queue)


@contextlib.asynccontextmanager
async def command_services(config: EngineConfig) -> AsyncIterator[Services]:
    """The engine's services for a plugin's command: a Temporal client for the configured cluster (with its
    TLS) and a Feishu client for the configured app, closed when the block ends.

    ``async with command_services(state.config()) as services: ...``
    """
    from engine.feishu.client import FeishuClient
    from engine.runtime.worker import connect_config

    temporal = config.temporal
    client = await connect_config(config)  # its address, TLS and payload codec
    feishu = FeishuClient.from_config(config)
    try:
        yield Services(config=config, feishu=feishu, temporal=client, task_queue=temporal.task_queue)
    finally:
        await feishu.aclose()
