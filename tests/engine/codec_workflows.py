"""A small workflow that holds a patient note, for the payload codec's tests (not a test module)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow


class PatientNote(BaseModel):
    bed: str
    name: str
    summary: str


@activity.defn(name="codec_test.file_note")
async def file_note(note: PatientNote) -> str:
    return f"filed {note.bed}"


@workflow.defn(name="codec_test.Handover")
class NoteHolder:
    """Takes notes by update (each filed by an activity), answers them by query, ends on ``close``."""

    def __init__(self) -> None:
        self.notes: list[PatientNote] = []
        self.closed = False

    @workflow.run
    async def run(self, ward: str) -> list[PatientNote]:
        await workflow.wait_condition(lambda: self.closed)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.notes

    @workflow.update
    async def save(self, note: PatientNote) -> str:
        self.notes.append(note)
        return await workflow.execute_activity(file_note, note, start_to_close_timeout=timedelta(seconds=10))

    @workflow.query
    def entries(self) -> list[PatientNote]:
        return self.notes

    @workflow.signal
    def close(self) -> None:
        self.closed = True
