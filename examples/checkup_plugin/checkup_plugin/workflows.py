"""The check-up workflow: asks the deadline ladder what is next, sleeps until then, sends."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.sdk import EscalationStep, LadderSettings, PluginSettings, WorkCalendar, feishu_call, next_notice
    from engine.sdk.feishu import SEND_MESSAGE, Recipient, SendMessage


class CheckupSettings(PluginSettings):
    manager: str = "ou_manager"
    ladder: LadderSettings = Field(default_factory=lambda: LadderSettings(
        before_days=[30, 7, 1], after=[EscalationStep(every_days=1, times=3, to="manager")]))


class Checkup(BaseModel):
    device: str
    owner: str
    due: date


@workflow.defn(name="checkup.Reminders")
class CheckupReminders:
    def __init__(self) -> None:
        self.sent: list[str] = []

    @workflow.run
    async def run(self, checkup: Checkup, ladder: LadderSettings, timezone: str, manager: str) -> list[str]:
        calendar = WorkCalendar(timezone)
        org = workflow.info().workflow_id.split(":")[0]
        while True:
            decision = next_notice(checkup.due, self.sent, workflow.now(), ladder, calendar)
            if decision.is_nothing:
                return self.sent
            if not decision.is_due(workflow.now()):
                await workflow.sleep(decision.at - workflow.now())
                continue
            to = checkup.owner if decision.data["to"] == "owner" else manager
            await feishu_call(SEND_MESSAGE, SendMessage(
                org=org, to=Recipient(id=to), template="checkup:reminder",
                context={"device": checkup.device, "due": checkup.due.isoformat(), "reason": decision.reason},
                idempotency_key=f"{workflow.info().workflow_id}:{decision.step}"))
            self.sent.append(decision.step or "")

    @workflow.query(name="state")
    def state(self) -> dict[str, list[str]]:
        return {"sent": self.sent}
