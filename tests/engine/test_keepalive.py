"""The worker heartbeats activities that ask for it (engine/runtime/keepalive.py), on a real dev server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from engine.runtime.keepalive import KeepAlive, beat_interval
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect

HEARTBEAT = timedelta(seconds=1)


@activity.defn(name="keepalive.quiet")
async def quiet(seconds: float) -> int:
    """Longer than its heartbeat timeout, and never heartbeats itself."""
    await asyncio.sleep(seconds)
    return activity.info().attempt


@activity.defn(name="keepalive.quiet_sync")
def quiet_sync(seconds: float) -> int:
    """The same in the worker's thread pool."""
    time.sleep(seconds)
    return activity.info().attempt


@activity.defn(name="keepalive.progress")
async def progress(seconds: float) -> str:
    """Records progress, stays quiet past the heartbeat timeout, then fails once: the retry reads the progress."""
    details = activity.info().heartbeat_details
    if details:
        return str(details[0])
    activity.heartbeat("row 7")
    await asyncio.sleep(seconds)
    raise ApplicationError("fail the first attempt")


@workflow.defn(name="keepalive.Caller", sandboxed=False)
class Caller:
    @workflow.run
    async def run(self, name: str, seconds: float) -> object:
        return await workflow.execute_activity(
            name, seconds, start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=HEARTBEAT,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2))


async def call(client: Client, name: str, seconds: float, *, keepalive: bool) -> object:
    queue = f"keepalive-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Caller], activities=[quiet, quiet_sync, progress],
                      workflow_runner=UnsandboxedWorkflowRunner(), interceptors=[KeepAlive()] if keepalive else [],
                      activity_executor=concurrent.futures.ThreadPoolExecutor(4)):
        return await client.execute_workflow(Caller.run, args=[name, seconds], id=queue, task_queue=queue,
                                             execution_timeout=timedelta(seconds=60))


@pytest.fixture
async def client(dev_server: EmbeddedTemporal) -> Client:
    return await connect(dev_server.address, "default")


@pytest.mark.parametrize("name", ["keepalive.quiet", "keepalive.quiet_sync"])
async def test_a_quiet_activity_outlives_its_heartbeat_timeout(client: Client, name: str) -> None:
    assert await call(client, name, 3 * HEARTBEAT.total_seconds(), keepalive=True) == 1  # first attempt


async def test_without_the_interceptor_the_same_activity_times_out(client: Client) -> None:
    """The control: the server does enforce the heartbeat timeout, so the test above measures the interceptor."""
    with pytest.raises(WorkflowFailureError) as failure:
        await call(client, "keepalive.quiet", 3 * HEARTBEAT.total_seconds(), keepalive=False)
    assert "heartbeat" in repr(failure.value.cause.__cause__).lower()


async def test_keepalive_beats_keep_the_activitys_own_details(client: Client) -> None:
    assert await call(client, "keepalive.progress", 2 * HEARTBEAT.total_seconds(), keepalive=True) == "row 7"


def test_beats_come_several_times_per_timeout() -> None:
    assert beat_interval(timedelta(seconds=15)) == 3.75
    assert beat_interval(timedelta(milliseconds=10)) == 0.05


def test_plugin_activity_options_are_bounded_and_heartbeated() -> None:
    """Every plugin builds its activities' options here, so none can miss the heartbeat timeout."""
    from engine.workflow_support import ACTIVITY_HEARTBEAT, PLUGIN_RETRY, activity_options

    options = activity_options(timedelta(seconds=30))
    assert options == {"start_to_close_timeout": timedelta(seconds=30), "schedule_to_close_timeout": timedelta(hours=6),
                       "heartbeat_timeout": ACTIVITY_HEARTBEAT, "retry_policy": PLUGIN_RETRY}
    assert "retry_policy" not in activity_options(timedelta(minutes=1), retry=None)  # Temporal's default
