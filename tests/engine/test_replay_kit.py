"""engine.testing.replay: a history that no longer replays fails the test, naming the workflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow

from engine.testing.replay import assert_replays, keep_history, load_history
from plugins.asset_loan.workflows import WORKFLOWS

LOAN = Path(__file__).parents[1] / "plugins" / "asset_loan" / "histories" / "loan.json"
LOAN_ID = "acme:asset_loan:RD-OSC-001"


@workflow.defn(name="asset_loan.Loan")
class ChangedLoan:
    """A loan workflow whose logic changed without a patch: it finishes at once."""

    @workflow.run
    async def run(self, params: object) -> None:
        return None


async def test_a_recorded_history_replays_on_the_same_code() -> None:
    await assert_replays(load_history(LOAN, LOAN_ID), WORKFLOWS)


async def test_an_unpatched_change_fails_with_the_workflow_id() -> None:
    with pytest.raises(AssertionError, match=LOAN_ID):
        await assert_replays(load_history(LOAN, LOAN_ID), [ChangedLoan])


def test_keep_history_writes_once_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = load_history(LOAN, LOAN_ID)
    fixture = tmp_path / "histories" / "h.json"
    keep_history(history, fixture, "TEST_RECORD")
    assert load_history(fixture, LOAN_ID).events == history.events
    fixture.write_text("kept", encoding="utf-8")
    keep_history(history, fixture, "TEST_RECORD")
    assert fixture.read_text(encoding="utf-8") == "kept"  # an existing fixture is not rewritten
    monkeypatch.setenv("TEST_RECORD", "1")
    keep_history(history, fixture, "TEST_RECORD")
    assert fixture.read_text(encoding="utf-8") != "kept"
