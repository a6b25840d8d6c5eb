"""Signals and queries reach a workflow started with a delay at once (engine/dormant.py), on a real dev server.

The dev server is the one whose rules matter here: it holds a plain signal until the delay ends and refuses
queries. The time-skipping server dispatches a workflow task for any signal, so it cannot show the difference.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from engine.dormant import is_dormant, query_running, signal_running, wake
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect

DELAY = timedelta(days=90)


@workflow.defn(name="dormant.Sleeper", sandboxed=False)
class Sleeper:
    def __init__(self) -> None:
        self.notes: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "stop" in self.notes)
        return self.notes

    @workflow.signal(name="note")
    def note(self, text: str) -> None:
        self.notes.append(text)

    @workflow.query(name="notes")
    def seen(self) -> list[str]:
        return self.notes


@pytest.fixture
async def client(dev_server: EmbeddedTemporal) -> Client:
    return await connect(dev_server.address, "default")


@pytest.fixture
async def queue(client: Client) -> AsyncIterator[str]:
    name = f"dormant-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=name, workflows=[Sleeper], workflow_runner=UnsandboxedWorkflowRunner()):
        yield name


async def dormant(client: Client, queue: str) -> WorkflowHandle:
    return await client.start_workflow(Sleeper.run, id=f"dormant-{uuid.uuid4().hex[:8]}", task_queue=queue,
                                       start_delay=DELAY)


async def test_a_plain_signal_waits_for_the_delay_but_signal_running_is_taken_at_once(client: Client,
                                                                                        queue: str) -> None:
    plain, reached = await dormant(client, queue), await dormant(client, queue)
    assert is_dormant(await plain.describe())

    await plain.signal(Sleeper.note, "held")
    assert await signal_running(client, reached.id, "note", "taken")
    assert await signal_running(client, reached.id, "note", "stop")

    assert await reached.result() == ["taken", "stop"]
    with pytest.raises(RPCError) as refused:
        await plain.query(Sleeper.seen)  # Temporal's own answer: still no workflow task
    assert refused.value.status == RPCStatusCode.FAILED_PRECONDITION


async def test_query_running_wakes_a_dormant_workflow_and_answers(client: Client, queue: str) -> None:
    handle = await dormant(client, queue)
    await handle.signal(Sleeper.note, "before")

    assert await query_running(client, handle.id, "notes") == ["before"]
    assert not is_dormant(await handle.describe())  # the wake scheduled its first workflow task
    events = [event.event_type async for event in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in events
    await handle.signal(Sleeper.note, "stop")  # awake now: a plain signal is taken at once
    assert await handle.result() == ["before", "stop"]


async def test_a_workflow_that_does_not_run_gets_nothing(client: Client, queue: str) -> None:
    assert not await signal_running(client, f"dormant-none-{uuid.uuid4().hex[:8]}", "note", "x")
    handle = await dormant(client, queue)
    await signal_running(client, handle.id, "note", "stop")
    await handle.result()

    assert not await signal_running(client, handle.id, "note", "late")  # closed: not started again
    assert not await wake(client, handle.id)
    with pytest.raises(RPCError) as missing:
        await query_running(client, f"dormant-none-{uuid.uuid4().hex[:8]}", "notes")
    assert missing.value.status == RPCStatusCode.NOT_FOUND
