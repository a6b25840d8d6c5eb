"""Events one scenario raises for the others: a workflow says what happened, other scenarios' routes act.

A repair ticket on a measuring device says ``repair.asset.in_repair``, and device_calibration pauses that
device's cycle; a loaned item marked damaged says ``asset_loan.asset.damaged``, and repair opens a ticket.
The raising scenario names no receiver: its workflow calls :func:`raise_event`, the engine's
``engine.raise_event`` activity turns the request into an :class:`~engine.events.EngineEvent` and
dispatches it through the same router as Feishu's events, so every enabled scenario's ``route_event``
sees it and what it returns is carried out (or nothing, which is logged).

Delivery is at least once: a retried activity dispatches again under the same ``event_id``
(``{workflow id}:{key}``), so receivers act once by keying on it (``SeenEvents``, ``once=True`` starts).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

from engine.workflow_support import activity_options, workflow_org

if TYPE_CHECKING:
    from engine.runtime.router import Router

log = logging.getLogger(__name__)

RAISE_EVENT = "engine.raise_event"  # Temporal activity type name (permanent)


class RaiseEvent(BaseModel):
    """What a workflow raises: ``event_type`` is ``{scenario}.{what happened}``; ``payload`` plain JSON."""

    org: str
    event_type: str
    event_id: str
    raised_at: datetime
    payload: dict[str, Any] = Field(default_factory=dict)


class RaisedEvent(BaseModel):
    """How many actions the enabled scenarios' routes returned for it (0: none acts on it, logged)."""

    effects: int = 0


async def raise_event(scenario: str, what: str, payload: dict[str, Any], *, key: str) -> int:
    """Raise ``{scenario}.{what}`` with ``payload`` in the running workflow's organization (workflow code).

    ``key`` names this raising within the workflow (``"in_repair:2"``): the event id is
    ``{workflow id}:{key}``, the same on every retry, so receivers act once. Returns the number of actions
    carried out; 0 means no enabled scenario acts on the event (which the worker logs). The payload goes
    into the workflow's history and the receivers' inputs: ids and states, no personal data.

    Raises ``ValueError`` for an empty ``what``; an activity failure after the engine's retries reaches
    the caller as Temporal's ``ActivityError``.
    """
    if not what.strip():
        raise ValueError("raise_event needs what happened, e.g. 'asset.in_repair'")
    request = RaiseEvent(org=workflow_org(), event_type=f"{scenario}.{what}",
                         event_id=f"{workflow.info().workflow_id}:{key}", raised_at=workflow.now(), payload=payload)
    result = await workflow.execute_activity(RAISE_EVENT, request, result_type=RaisedEvent,
                                             **activity_options(timedelta(seconds=60)))
    return result.effects


class EventActivities:
    """The ``engine.raise_event`` activity, bound to a running engine app (its config, plugins, clients)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._router: Router | None = None

    def all(self) -> list[Any]:
        return [self.raise_event]

    def router(self) -> Router:
        if self._router is None:
            from engine.runtime.router import Router, feishu_reply_sender

            self._router = Router(self.app.temporal, self.app.plugins, task_queue=self.app.config.temporal.task_queue,
                                  send_reply=feishu_reply_sender(self.app))
        return self._router

    @activity.defn(name=RAISE_EVENT)
    async def raise_event(self, request: RaiseEvent) -> RaisedEvent:
        """Dispatch ``request`` as an :class:`~engine.events.EngineEvent` to the organization's scenarios."""
        from engine.events import EngineEvent

        try:
            org = self.app.config.org(request.org)
        except KeyError as error:
            raise ApplicationError(f"unknown organization {request.org!r}", type="UnknownOrganization",
                                   non_retryable=True) from error
        if self.app.temporal is None:
            raise ApplicationError("no Temporal client in this process to dispatch raised events",
                                   type="NoTemporalClient", non_retryable=True)
        event = EngineEvent(event_id=request.event_id, event_type=request.event_type,
                            create_time=request.raised_at, payload=request.payload)
        result = await self.router().dispatch(event, org)
        if result.effects:
            log.info("event %s (%s) of %s: %d action(s)", event.event_id, event.event_type, org.id, result.effects)
        else:  # not an error (the receiving scenario may be off here), but it must leave a trace
            log.info("event %s (%s) of %s: no enabled scenario acts on it (enabled: %s)", event.event_id,
                     event.event_type, org.id, ", ".join(sorted(org.plugins)) or "none")
        return RaisedEvent(effects=result.effects)
