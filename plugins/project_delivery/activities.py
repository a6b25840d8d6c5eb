"""project_delivery's own I/O: the organization's settings for a run, the registry's name hand-out, and
dissolving a group. Messages, chats and Bitable go through the engine's Feishu activities.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from temporalio import activity

from .models import ContextRef, ProjectContext, Reservation, ReserveResult

SCENARIO = "project_delivery"
REGISTRY_KEY = "registry"


def _app() -> Any:
    from engine.runtime.app import current_app

    return current_app()


@activity.defn(name="project_delivery.load_context")
async def load_context(ref: ContextRef) -> ProjectContext:
    """The organization's effective settings, zone, locale and calendar exceptions."""
    org = _app().config.org(ref.org)
    settings = org.settings(SCENARIO)
    return ProjectContext(settings=settings.model_dump(mode="json"), timezone=org.timezone, locale=org.locale,
                          holidays=[date.fromisoformat(d) for d in org.config.holidays],
                          workdays=[date.fromisoformat(d) for d in org.config.workdays])


@activity.defn(name="project_delivery.reserve_name")
async def reserve_name(request: Reservation) -> ReserveResult:
    """Ask the organization's registry workflow for the group name (update-with-start, one per project).

    The registry runs its handlers one at a time, so two requests for the same customer and product can
    never both be accepted. The update id is the project id: a retried activity gets the same answer.
    """
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from engine.ids import workflow_id

    from .models import RegistryState

    client = _app().temporal
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
async def dissolve_chat(ref: dict[str, str]) -> None:
    """Dissolve a project group; a chat that is already gone is fine (a retried close)."""
    from engine.feishu.errors import FeishuError

    try:
        await _app().feishu.delete_chat(ref["chat_id"])
    except FeishuError as error:
        raise error.to_application_error() from error


ACTIVITIES = [load_context, reserve_name, dissolve_chat]
