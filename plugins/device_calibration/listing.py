"""Which cycles of an organization run, with the view each keeps in its memo, read from Temporal's visibility.

Listing every running cycle is most of a reconciliation's time at scale: the server's work per listed cycle
(README: Sizing). So a worker keeps its last listing of each organization and, the next time, lists only
the cycles whose view changed since (each stamps ``VIEW_CHANGED_AT`` when it does), the cycles started since
and the cycles closed since. A worker without a listing, or whose listing is older than
``FULL_LISTING_EVERY``, lists them all.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.common.v1 import Payload
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest, ListWorkflowExecutionsResponse
from temporalio.client import Client
from temporalio.service import RPCError

from plugins.device_calibration.models import CYCLE_WORKFLOW, SCENARIO, VIEW_CHANGED_AT, VIEW_MEMO, CycleView

# Cycles per page of the visibility listing. A server serves at most its frontend.visibilityMaxPageSize (1,000
# unless raised; the embedded server raises it to 5,000, README: Deploying); fewer pages cost it fewer sorts.
LISTING_PAGE_SIZE = 5_000
# How far behind a cycle's stamp its visibility record may be when a listing of changes reads it: the server
# writes visibility after the workflow task that set the stamp, from its transfer queue (seconds when
# healthy). A listing of changes reaches back this far before the last listing began.
VISIBILITY_LAG = timedelta(minutes=2)
# A worker lists every running cycle at least this often, whatever it holds: a cycle run meanwhile by a worker
# of a release that does not stamp (a rolling upgrade) is caught up with by then.
FULL_LISTING_EVERY = timedelta(days=7)

log = logging.getLogger(__name__)

RUNNING = f"WorkflowType = '{CYCLE_WORKFLOW}' AND ExecutionStatus = 'Running'"


def _instant(at: datetime) -> str:
    """``at`` as visibility's queries write a Datetime: RFC 3339 in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def listed(client: Client, org_id: str, query: str, *, views: bool = True) -> dict[str, CycleView | None]:
    """The cycles of ``org_id`` that ``query`` selects, each with the view in its memo (None for a cycle that
    keeps none: it started before cycles kept one; every one when ``views`` is False).

    The next page is asked for before this one is decoded, and a page's memos go through the data converter
    in one call: that serves a page because the engine's payload codec takes no per-workflow context.
    Raises ``RPCError`` when the server cannot list them (the time-skipping test server has no visibility).
    """
    prefix = f"{org_id}:{SCENARIO}:"
    found: dict[str, CycleView | None] = {}

    def page(token: bytes) -> asyncio.Future[ListWorkflowExecutionsResponse]:
        return asyncio.ensure_future(client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(namespace=client.namespace, query=query, page_size=LISTING_PAGE_SIZE,
                                          next_page_token=token), retry=True))

    pending: asyncio.Future[ListWorkflowExecutionsResponse] | None = page(b"")
    try:
        while pending is not None:
            response = await pending
            pending = page(response.next_page_token) if response.next_page_token else None
            ids: list[str] = []
            memos: list[Payload] = []
            for info in response.executions:
                wid = info.execution.workflow_id
                if not wid.startswith(prefix):
                    continue
                memo = info.memo.fields.get(VIEW_MEMO) if views else None
                if memo is None:
                    found[wid] = None
                else:
                    ids.append(wid)
                    memos.append(memo)
            for wid, raw in zip(ids, await client.data_converter.decode(memos), strict=True):
                found[wid] = CycleView.model_validate(raw)
        return found
    finally:
        if pending is not None:
            pending.cancel()


class Listed(dict[str, CycleView | None]):
    """Running cycles by workflow id, each with its view. ``of_changes``: brought up to date by a listing of
    changes, where a cycle that visibility showed too late to be read stays missing until the next full
    listing; a caller that would start a missing cycle confirms it is not running first."""

    of_changes: bool = False


@dataclass
class _Listing:
    began: datetime  # the server's time when the listing began
    full_began: datetime  # ... and when the last listing of every cycle began
    cycles: Listed


class RunningCycles:
    """A worker's last listing of each organization's running cycles, brought up to date by listing what
    changed since. One per worker (built with the scenario's activities); listings of one organization run
    one at a time.
    """

    def __init__(self) -> None:
        self._last: dict[str, _Listing] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def of(self, client: Client, org_id: str, now: datetime,
                 errors: list[str]) -> Listed | None:
        """The running cycles of ``org_id`` (workflow id to view) as of ``now``, the server's time (an
        activity's ``current_attempt_scheduled_time``); None when the server cannot list them (why: appended
        to ``errors``). The mapping is this worker's own: read it, do not change it.
        """
        lock = self._locks.setdefault(org_id, asyncio.Lock())
        async with lock:
            last = self._last.pop(org_id, None)  # held again only once a listing succeeds
            try:
                if last is not None and last.began <= now < last.full_began + FULL_LISTING_EVERY:
                    with_changes = await self._changes(client, org_id, last)
                    if with_changes is not None:
                        self._last[org_id] = _Listing(now, last.full_began, with_changes)
                        return with_changes
                cycles = Listed(await listed(client, org_id, RUNNING))
            except RPCError as error:
                errors.append(f"running cycles could not be listed ({error.message})")
                return None
            self._last[org_id] = _Listing(now, now, cycles)
            return cycles

    @staticmethod
    async def _changes(client: Client, org_id: str, last: _Listing) -> Listed | None:
        """``last`` brought up to date: cycles closed since it began are dropped, then cycles started or
        changed since are (re)read. None when the server refuses the query (the search attribute is not
        registered): the caller lists every cycle instead.

        Closed first: a cycle that continues as new between the two listings is then read again under its new
        run, not dropped after it.
        """
        since = _instant(last.began - VISIBILITY_LAG)
        try:
            closed = await listed(client, org_id, f"WorkflowType = '{CYCLE_WORKFLOW}' AND CloseTime >= '{since}'",
                                  views=False)
            changed = await listed(client, org_id, f"{RUNNING} AND ({VIEW_CHANGED_AT.name} >= '{since}' "
                                                   f"OR StartTime >= '{since}')")
        except RPCError as error:
            log.warning("changes of %s's cycles could not be listed (%s); every cycle is listed", org_id,
                        error.message)
            return None
        cycles = Listed(last.cycles)  # a reconciliation may still read the mapping it was given
        cycles.of_changes = True
        for wid in closed:
            cycles.pop(wid, None)
        cycles.update(changed)
        return cycles
