"""The embedded server serves visibility pages larger than Temporal's default 1,000 rows.

A reconciliation lists every running cycle; on SQLite each page costs a sort of all matching rows, so the
embedded server raises its cap (``VISIBILITY_MAX_PAGE_SIZE``) and the listing asks for pages that large.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

from engine.runtime.server import VISIBILITY_MAX_PAGE_SIZE, EmbeddedTemporal
from engine.runtime.worker import connect

COUNT = 1_200  # more than Temporal's default page cap of 1,000


async def test_one_page_holds_more_than_a_thousand_workflows(dev_server: EmbeddedTemporal) -> None:
    assert VISIBILITY_MAX_PAGE_SIZE > COUNT
    client = await connect(dev_server.address, "default")
    kind = f"pages.{uuid.uuid4().hex[:8]}"  # a type of its own: other tests share the server
    ids = iter(range(COUNT))

    async def start_some() -> None:
        for n in ids:  # dormant, on a queue no worker polls: nothing runs, each is one visibility row
            await client.start_workflow(kind, id=f"{kind}:{n}", task_queue=kind, start_delay=timedelta(days=30))

    await asyncio.gather(*(start_some() for _ in range(16)))
    query = f"WorkflowType = '{kind}' AND ExecutionStatus = 'Running'"
    for _ in range(600):  # visibility catches up with the starts a little later (more under a loaded suite)
        if (await client.count_workflows(query)).count == COUNT:
            break
        await asyncio.sleep(0.1)
    page = await client.workflow_service.list_workflow_executions(ListWorkflowExecutionsRequest(
        namespace="default", query=query, page_size=VISIBILITY_MAX_PAGE_SIZE))
    assert len(page.executions) == COUNT
    assert not page.next_page_token
