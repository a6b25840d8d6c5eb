"""A worker keeps its last listing of the running cycles and, the next time, lists only what changed since.

On a real dev server (the time-skipping server has no visibility listing). The cycles are started dormant
on a queue no worker polls, with their view in the memo and, for one, the stamp a cycle sets when its view
changes; a view that was not read again is the very object the first listing decoded.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from engine.runtime.search_attributes import ensure_search_attributes
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect
from plugins.device_calibration import listing
from plugins.device_calibration.listing import FULL_LISTING_EVERY, RUNNING, RunningCycles
from plugins.device_calibration.models import (
    CYCLE_WORKFLOW,
    SCENARIO,
    VIEW_CHANGED_AT,
    VIEW_MEMO,
    CycleInput,
    CycleView,
)


def view(n: int) -> CycleView:
    return CycleView(phase="active", due=date(2030, 1, n), info=f"info{n}")


async def start(client: Client, wid: str, shown: CycleView, queue: str,
                stamped: datetime | None = None) -> WorkflowHandle[Any, Any]:
    attributes = TypedSearchAttributes([SearchAttributePair(VIEW_CHANGED_AT, stamped)]) if stamped else None
    return await client.start_workflow(CYCLE_WORKFLOW, CycleInput(org="x", device_id=wid.rsplit(":", 1)[1]),
                                       id=wid, task_queue=queue, start_delay=timedelta(days=30),
                                       memo={VIEW_MEMO: shown.model_dump(mode="json")},
                                       search_attributes=attributes)


async def server_time(handle: WorkflowHandle[Any, Any]) -> datetime:
    """When the server started ``handle``'s run, by its own clock."""
    return (await handle.describe()).start_time


async def listed_as(client: Client, wanted: dict[str, str]) -> None:
    """Wait until visibility shows each workflow id with the run id given (a start is counted a little after
    it: up to a minute on a loaded machine)."""
    for _ in range(600):
        runs = {e.id: e.run_id async for e in client.list_workflows(RUNNING)}
        if all(runs.get(wid) == run for wid, run in wanted.items()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility never showed {wanted}")


async def test_the_next_listing_reads_only_cycles_started_changed_or_closed_since(
        dev_server: EmbeddedTemporal, monkeypatch: Any) -> None:
    monkeypatch.setattr(listing, "VISIBILITY_LAG", timedelta(0))  # one machine, one clock: no lag to allow for
    client = await connect(dev_server.address, "default")
    await ensure_search_attributes(client, [VIEW_CHANGED_AT])
    org, queue = f"since{uuid.uuid4().hex[:6]}", f"since-nobody-{uuid.uuid4().hex[:6]}"
    wid = {name: f"{org}:{SCENARIO}:{name}" for name in ("kept", "changed", "stamped", "closed", "new")}
    handles = {name: await start(client, wid[name], view(n), queue)
               for n, name in enumerate(("kept", "changed", "closed"), 1)}
    # a cycle started before the first listing whose view changes after it began: its stamp is later than that
    # (times by the server's clock, which stamps starts and closes; the hard-moment runs move this process's)
    stamp = await server_time(handles["closed"]) + timedelta(minutes=1)
    handles["stamped"] = await start(client, wid["stamped"], view(4), queue, stamped=stamp)
    began = await server_time(handles["stamped"]) + timedelta(milliseconds=1)
    assert began < stamp
    await listed_as(client, {wid[name]: handle.result_run_id for name, handle in handles.items()})

    cycles = RunningCycles()
    errors: list[str] = []
    first = await cycles.of(client, org, began, errors)
    assert first is not None and set(first) == {wid["kept"], wid["changed"], wid["closed"], wid["stamped"]}
    assert not first.of_changes  # a full listing: a cycle missing from it did not run when it was read

    await asyncio.sleep(0.05)  # whatever follows starts or closes after the first listing began
    await handles.pop("closed").terminate("its device left the table")
    await handles.pop("changed").terminate("continued as new, as a cycle does")
    handles["changed"] = await start(client, wid["changed"], view(12), queue)
    handles["new"] = await start(client, wid["new"], view(5), queue)
    await listed_as(client, {wid[name]: handle.result_run_id for name, handle in handles.items()})
    for _ in range(600):  # the closed cycle must have left the running ones too
        if wid["closed"] not in {e.id async for e in client.list_workflows(RUNNING)}:
            break
        await asyncio.sleep(0.1)

    second = await cycles.of(client, org, began + timedelta(minutes=1), errors)

    assert errors == [] and second is not None and second.of_changes
    assert second == {wid["kept"]: view(1), wid["changed"]: view(12), wid["stamped"]: view(4),
                      wid["new"]: view(5)}
    assert second[wid["kept"]] is first[wid["kept"]]  # neither changed nor started since: not listed again
    assert second[wid["stamped"]] is not first[wid["stamped"]]  # started before, stamped since: read again

    # past FULL_LISTING_EVERY, or when the server's clock reads earlier than the last listing: every cycle
    for now in (began + FULL_LISTING_EVERY + timedelta(minutes=2), began):
        again = await cycles.of(client, org, now, errors)
        assert again is not None and not again.of_changes
        assert again == second and again[wid["kept"]] is not second[wid["kept"]]
        second = again

    for handle in handles.values():
        await handle.terminate("test over")
