"""project_delivery's own I/O: the registry's name hand-out and dissolving a group. Messages, chats and
Bitable go through the engine's Feishu activities, a run's site context through ``load_site_context``.

The worker builds :class:`ProjectDeliveryActivities` once with the engine's services (``engine.sdk.Services``).
"""

from __future__ import annotations

from temporalio import activity

from engine.sdk import FeishuError, Services, workflow_id

from .models import ContextRef, ProjectContext, Reservation, ReserveResult

SCENARIO = "project_delivery"
REGISTRY_KEY = "registry"


class ProjectDeliveryActivities:
    """project_delivery's activities, bound to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    @activity.defn(name="project_delivery.load_context")
    async def load_context(self, ref: ContextRef) -> ProjectContext:
        """The organization's effective settings, zone, locale and calendar exceptions: what runs recorded
        before the ``project_delivery.site_context`` patch load (new runs load their site's context)."""
        context = self.services.context(ref.org, SCENARIO)
        return ProjectContext(settings=context.settings, timezone=context.timezone, locale=context.locale,
                              holidays=context.holidays, workdays=context.workdays)

    @activity.defn(name="project_delivery.reserve_name")
    async def reserve_name(self, request: Reservation) -> ReserveResult:
        """Ask the organization's registry workflow for the group name (update-with-start, one per project).

        The registry runs its handlers one at a time, so two requests for the same customer and product can
        never both be accepted. The update id is the project id: a retried activity gets the same answer.
        """
        from temporalio.client import WithStartWorkflowOperation
        from temporalio.common import WorkflowIDConflictPolicy

        from .models import RegistryState

        client = self.services.temporal
        if client is None:
            raise RuntimeError("no Temporal client in this process: the registry cannot be reached")
        start = WithStartWorkflowOperation(
            "project_delivery.Registry", RegistryState(), id=workflow_id(request.org, SCENARIO, REGISTRY_KEY),
            task_queue=activity.info().task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        result = await client.execute_update_with_start_workflow(
            "reserve", request, start_workflow_operation=start, id=f"reserve:{request.project_id}",
            result_type=ReserveResult)
        return ReserveResult.model_validate(result) if not isinstance(result, ReserveResult) else result

    @activity.defn(name="project_delivery.dissolve_chat")
    async def dissolve_chat(self, ref: dict[str, str]) -> None:
        """Dissolve a project group; a chat that is already gone is fine (a retried close)."""
        try:
            await self.services.feishu.delete_chat(ref["chat_id"])
        except FeishuError as error:
            raise error.to_application_error() from error


ACTIVITIES = [ProjectDeliveryActivities]
