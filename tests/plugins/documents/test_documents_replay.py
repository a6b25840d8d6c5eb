"""A recorded round replays: later changes to documents.Round must keep it replaying (behind
``workflow.patched``), as Temporal replays the rounds running when a new version is deployed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from documents_helpers import A_RESP, B_RESP, C_RESP, a_round, config, file_message, press, send, state

import plugins.documents as documents
from engine.testing import moments
from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.documents.workflows import WORKFLOWS

HISTORY = Path(__file__).parent / "histories" / "round_full.json"


async def test_a_whole_round_replays(scenario_harness: Any) -> None:
    """Records (once; ``DOCUMENTS_RECORD_HISTORY=1`` again) an upload round through reminders, a late
    hospital, its head's escalation, answers by file and by link, and the summaries."""
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        deadline = env.calendar().next_workday(start.date() + timedelta(days=4))
        await send(env, a_round("DOC-REPLAY", deadline, kind="upload"))
        await env.deliver(file_message("DOC-REPLAY A院.xlsx", A_RESP, message_id="om_replay_a", at=start))
        await env.deliver(press("submit", "DOC-REPLAY", "hosp_c", C_RESP, link="https://x.feishu.cn/drive/c"))
        await env.advance(days=9)  # past the deadline: reminders, the summary, the head's escalation
        await env.deliver(press("submit", "DOC-REPLAY", "hosp_b", B_RESP, link="https://x.feishu.cn/drive/b"))
        assert (await state(env, "DOC-REPLAY")).status == "all_in"
        history = await env.handle("documents", "DOC-REPLAY").fetch_history()
        assert "WORKFLOW_EXECUTION_COMPLETED" in history.to_json()
        await assert_replays(history, WORKFLOWS)
        keep_history(history, HISTORY, "DOCUMENTS_RECORD_HISTORY")


async def test_the_recorded_round_replays() -> None:
    history = load_history(HISTORY, "acme:documents:recorded")
    await assert_replays(history, WORKFLOWS)
