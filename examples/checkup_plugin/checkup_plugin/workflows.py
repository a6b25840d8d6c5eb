"""The check-up workflow: asks the deadline ladder what is next, sleeps until then, sends."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.sdk import EscalationStep, LadderSettings, PluginSettings, feishu_call, load_site_context, next_notice
    from engine.sdk.feishu import SEND_MESSAGE, Recipient, SendMessage


class CheckupSettings(PluginSettings):
    manager: str = "ou_manager"
    ladder: LadderSettings = Field(default_factory=lambda: LadderSettings(
        before_days=[30, 7, 1], after=[EscalationStep(every_days=1, times=3, to="manager")]))


class Checkup(BaseModel):
    device: str
    owner: str
    due: date
    site: str | None = None  # a site of the organization: its settings, zone, language and working days


@workflow.defn(name="checkup.Reminders")
class CheckupReminders:
    def __init__(self) -> None:
        self.sent: list[str] = []

    @workflow.run
    async def run(self, checkup: Checkup) -> list[str]:
        # the effective settings, working days, language and business clock of the check-up's site, loaded
        # by an engine activity: workflow code never reads config
        context = await load_site_context("checkup", checkup.site)
        settings, calendar, clock = context.settings_as(CheckupSettings), context.calendar(), context.clock
        while True:
            now = clock.now(workflow.now())
            decision = next_notice(checkup.due, self.sent, now, settings.ladder, calendar)
            if decision.is_nothing:
                return self.sent
            if not decision.is_due(now):
                await workflow.sleep(clock.real_delay(decision.at - now))
                continue
            to = checkup.owner if decision.data["to"] == "owner" else settings.manager
            await feishu_call(SEND_MESSAGE, SendMessage(
                org=context.org, to=Recipient(id=to), template="checkup:reminder",
                context={"device": checkup.device, "due": checkup.due.isoformat(), "step": decision.step},
                idempotency_key=f"{workflow.info().workflow_id}:{decision.step}",
                locale=context.locale, timezone=context.timezone))
            self.sent.append(decision.step or "")

    @workflow.query(name="state")
    def state(self) -> dict[str, list[str]]:
        return {"sent": self.sent}
