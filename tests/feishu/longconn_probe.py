"""A small scenario for the long-connection tests: each event it takes leaves one entry in a ledger.

Messages and Bitable record changes are signalled (with start) to one ``probe.Ledger`` workflow per
organization; a card press with ``{"op": "close"}`` updates it and answers with a toast.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from temporalio import workflow

from engine import actions
from engine.hookspecs import hookimpl
from engine.scenario import Scenario

with workflow.unsafe.imports_passed_through():
    from engine.workflow_support import SeenEvents

LEDGER_KEY = "ledger"


class Entry(BaseModel):
    event_id: str
    text: str


class ProbeSettings(BaseModel):
    pass


@workflow.defn(name="probe.Ledger")
class Ledger:
    """Records one entry per event id; ends when closed."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.seen = SeenEvents()
        self.closed = False

    @workflow.run
    async def run(self, key: str) -> list[str]:
        await workflow.wait_condition(lambda: self.closed)
        return self.entries

    @workflow.signal(name="note")
    async def note(self, entry: Entry) -> None:
        if self.seen.first_time(entry.event_id):
            self.entries.append(entry.text)

    @workflow.query(name="entries")
    def entries_so_far(self) -> list[str]:
        return self.entries

    @workflow.update(name="close")
    async def close(self) -> dict[str, Any]:
        self.closed = True
        return {"toast": f"closed after {len(self.entries)}"}


class ProbePlugin:
    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="probe", version="0.1", settings_model=ProbeSettings, workflows=[Ledger]))

    @hookimpl
    def route_event(self, event: Any, org: Any) -> list[actions.Action] | None:
        from engine.events import BitableRecordChanged, CardAction, MessageReceived

        if isinstance(event, MessageReceived):
            text = f"message {event.text}"
        elif isinstance(event, BitableRecordChanged):
            text = f"record {event.record_id} {event.action}"
        elif isinstance(event, CardAction) and event.action_value.get("op") == "close":
            return [actions.UpdateWorkflow(scenario="probe", key=LEDGER_KEY, update="close",
                                           update_id=event.event_id)]
        else:
            return None
        return [actions.SignalWithStart(scenario="probe", key=LEDGER_KEY, workflow="probe.Ledger", signal="note",
                                        arg=Entry(event_id=event.event_id, text=text), start_args=[LEDGER_KEY])]
