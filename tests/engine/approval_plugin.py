"""A small scenario that asks Feishu for an approval, for the engine's approval tests."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from temporalio import workflow

from engine.hookspecs import hookimpl
from engine.scenario import PluginSettings, Scenario

with workflow.unsafe.imports_passed_through():
    from engine.sdk import ApprovalDecision, ApprovalRequest, ApprovalSettings, load_site_context, request_approval


class PurchaseSettings(PluginSettings):
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)


@workflow.defn(name="purchase.Request")
class PurchaseRequest:
    """Asks for one approval and returns every decision it received (there must be exactly one)."""

    def __init__(self) -> None:
        self.decisions: list[ApprovalDecision] = []

    @workflow.run
    async def run(self, site: str | None, applicant: str, title: str) -> list[dict[str, Any]]:
        context = await load_site_context("purchase", site)
        settings = context.settings_as(PurchaseSettings)
        decision = await request_approval(ApprovalRequest(
            key="purchase", settings=settings.approval, applicant_open_id=applicant, title=title, site=context,
            form=[{"id": "reason", "type": "textarea", "value": title}]))
        self.decisions.append(decision)
        return [d.model_dump(mode="json") for d in self.decisions]


class PurchasePlugin:
    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="purchase", version="1.0", settings_model=PurchaseSettings,
                          workflows=[PurchaseRequest], site_overridable=["approval.approvers"]))
