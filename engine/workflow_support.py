"""Helpers for plugin workflows: safe to import inside Temporal's workflow sandbox.

Nothing here does I/O or reads the wall clock. Workflows call the engine's Feishu activities by name
(:mod:`engine.feishu.requests`) with :func:`feishu_call`, load their organization/site context with
:func:`load_site_context`, refuse an update with :class:`Refusal`, and absorb duplicate event deliveries
with :class:`SeenEvents`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from engine.context import SITE_CONTEXT, SiteContext, SiteContextRequest
from engine.feishu import requests as fr
from engine.ids import split_workflow_id

# Feishu calls: retried with backoff for up to a day (rate limits, 5xx, outages); errors the edge marks
# non-retryable (bad ids, no permission) fail at once and surface in the workflow.
FEISHU_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
FEISHU_START_TO_CLOSE = timedelta(seconds=60)
# The worker heartbeats every activity that has a heartbeat timeout (engine/runtime/keepalive.py): an
# activity in flight when its worker dies is retried after this, not after its start-to-close timeout.
ACTIVITY_HEARTBEAT = timedelta(seconds=15)
# Always bounded: the time-skipping test server would otherwise leap years (TEMPORAL_NOTES.md).
FEISHU_SCHEDULE_TO_CLOSE = timedelta(days=1)


# A plugin's own activities: retried with backoff up to every 5 minutes, for at most 6 hours by default.
PLUGIN_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5))
PLUGIN_SCHEDULE_TO_CLOSE = timedelta(hours=6)


def activity_options(start_to_close: timedelta, *, schedule_to_close: timedelta = PLUGIN_SCHEDULE_TO_CLOSE,
                     retry: RetryPolicy | None = PLUGIN_RETRY) -> dict[str, Any]:
    """Keyword arguments of ``workflow.execute_activity`` for a plugin's own activity.

    Always bounded (the time-skipping test server would otherwise leap years, TEMPORAL_NOTES.md) and
    heartbeated by the worker, so a crash costs ``ACTIVITY_HEARTBEAT``, not ``start_to_close``. ``retry=None``
    leaves Temporal's default retry policy.
    """
    options: dict[str, Any] = {"start_to_close_timeout": start_to_close,
                               "schedule_to_close_timeout": schedule_to_close,
                               "heartbeat_timeout": ACTIVITY_HEARTBEAT}
    if retry is not None:
        options["retry_policy"] = retry
    return options


async def feishu_call(activity: str, request: Any, *, result_type: type | None = None) -> Any:
    """Run one of the engine's Feishu activities with the engine's retry policy and timeouts."""
    return await workflow.execute_activity(
        activity,
        request,
        start_to_close_timeout=FEISHU_START_TO_CLOSE,
        schedule_to_close_timeout=FEISHU_SCHEDULE_TO_CLOSE,
        heartbeat_timeout=ACTIVITY_HEARTBEAT,
        retry_policy=FEISHU_RETRY,
        result_type=result_type,
    )


async def send_to_each(org: str, open_ids: Iterable[str], template: str, context: dict[str, Any], *,
                       key: str, locale: str | None = None) -> int:
    """Send ``template`` rendered with ``context`` to each of ``open_ids``, one after the other, in ``locale``
    (None: the organization's); returns how many were sent.

    Each message's idempotency key is ``{key}:{open_id}``: give ``key`` what makes this send unique (the
    workflow id, the month, the site), and a repeated run sends nothing twice. A monthly report's card to a
    site's recipients is the usual case.
    """
    sent = 0
    for open_id in open_ids:
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=org, to=fr.Recipient(id=open_id), template=template, context=context, locale=locale,
            idempotency_key=f"{key}:{open_id}"), result_type=fr.SentMessage)
        sent += 1
    return sent


def workflow_org() -> str:
    """The organization of the running workflow (the first part of its id ``{org}:{scenario}:{key}``)."""
    return split_workflow_id(workflow.info().workflow_id)[0]


async def load_site_context(scenario: str, site: str | None = None, *, org: str | None = None) -> SiteContext:
    """The organization/site context of ``scenario`` (effective settings, zone, locale, calendar, clock).

    Runs the engine's ``engine.site_context`` activity, so a running workflow sees settings changed since
    it started when it loads them again. ``site`` is a site id or name (``None``: the group's standard);
    ``org`` defaults to the running workflow's organization.
    """
    request = SiteContextRequest(org=org or workflow_org(), scenario=scenario, site=site or None)
    return await workflow.execute_activity(SITE_CONTEXT, request, result_type=SiteContext,
                                           **activity_options(timedelta(seconds=30)))


class Refusal(ApplicationError):
    """An update or command refused by the scenario's state or rules; ``message`` is what the person sees.

    Raise it from an update handler or validator: the router turns it into the toast (or reply) of the
    card press, so write ``message`` in the person's language, with no internal reason (log that, or keep
    it in an audit row). It is never retried. ``code`` becomes the Temporal error type.
    """

    def __init__(self, message: str, *, code: str = "Refusal") -> None:
        super().__init__(message, type=code, non_retryable=True)


class SeenEvents:
    """The last ``size`` event ids a workflow applied, to absorb Feishu's at-least-once delivery.

    Keep it in the workflow's state and carry ``ids()`` over continue-as-new, so a duplicate that arrives
    after a new run began is absorbed too.
    """

    def __init__(self, ids: Iterable[str] = (), size: int = 500):
        self._order: deque[str] = deque(maxlen=size)
        self._set: set[str] = set()
        for event_id in ids:
            self.first_time(event_id)

    def first_time(self, event_id: str | None) -> bool:
        """True the first time ``event_id`` is seen (and remembers it); events without an id always pass."""
        if not event_id:
            return True
        if event_id in self._set:
            return False
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(event_id)
        self._set.add(event_id)
        return True

    def __contains__(self, event_id: object) -> bool:
        """Whether ``event_id`` was seen (without remembering it: for update validators, which must not mutate)."""
        return event_id in self._set

    def ids(self) -> list[str]:
        return list(self._order)


class Deferred:
    """I/O an update handler leaves to the workflow's main loop, so that a card press is answered at once.

    Feishu shows an error toast when a card callback is not answered within 3 s, and the ingress answers
    within 2.5 s; a Bitable write or a message under a rate limit can take far longer. So an update handler
    decides from the workflow's state (pure), records the decision in that state, queues its I/O here and
    returns the toast; the main loop awaits :meth:`run` whenever :attr:`pending` is true (add it to the loop's
    ``wait_condition``) and before continue-as-new. Nothing is lost: the update's completion is in the
    history, so a replay queues the same work again and the activities already done replay from history.

    Usage, in a workflow::

        self.deferred = Deferred()
        ...
        @workflow.update
        async def approve(self, request):
            self.status = "approved"                      # decide
            self.deferred.add(self._write_row)            # act after
            self.deferred.add(self._send, request.actor, "my_plugin:approved", ctx)
            return {"toast": "..."}                       # answer now
        ...
        await workflow.wait_condition(lambda: self.deferred.pending or self._wake, timeout=...)
        await self.deferred.run()
    """

    def __init__(self) -> None:
        self._queue: deque[tuple[Callable[..., Awaitable[Any]], tuple[Any, ...], dict[str, Any]]] = deque()

    def add(self, work: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
        """Queue ``await work(*args, **kwargs)``; the arguments are taken now, not when it runs."""
        self._queue.append((work, args, kwargs))

    @property
    def pending(self) -> bool:
        """Whether work is waiting for :meth:`run`."""
        return bool(self._queue)

    async def run(self) -> int:
        """Run the queued work in the order it was added, each to its end (work queued meanwhile runs too).

        Returns how many were run. An exception stops the run and propagates, as it would have in the
        handler; what was not run stays queued.
        """
        done = 0
        while self._queue:
            work, args, kwargs = self._queue[0]
            await work(*args, **kwargs)
            self._queue.popleft()
            done += 1
        return done
