"""What a plugin's ``route_event`` returns: actions on workflows, executed by the router.

Every action names its scenario and business key; the router builds the workflow ID
``{org}:{scenario}:{key}`` itself, and refuses an action for a scenario the organization did not
enable. Actions are data, so routing stays pure and testable without Temporal.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class _WorkflowAction(BaseModel):
    scenario: str
    key: str


class StartWorkflow(_WorkflowAction):
    """Start ``workflow`` unless a workflow with this ID is already running (then: nothing).

    With ``once``, also not when one already ran under this ID (within Temporal's retention): for a
    workflow per message or request, keyed so a redelivery maps to the same ID (``engine.sdk.message_key``).
    """

    workflow: str
    args: list[Any] = Field(default_factory=list)
    once: bool = False


class SignalWithStart(_WorkflowAction):
    """Signal the workflow, starting it with ``start_args`` first if it is not running.

    Put the event id into ``arg`` so the workflow can absorb a duplicate delivery
    (see :class:`engine.workflow_support.SeenEvents`).
    """

    workflow: str
    signal: str
    arg: Any = None
    start_args: list[Any] = Field(default_factory=list)


class SignalWorkflow(_WorkflowAction):
    """Signal a running workflow; if none runs under this ID the action is reported as skipped."""

    signal: str
    arg: Any = None


class UpdateWorkflow(_WorkflowAction):
    """Send an update and wait for its result (Temporal deduplicates on ``update_id`` within a run).

    A dict result with a ``toast`` key becomes the toast of a card callback's answer; with a ``card``
    key (a rendered card dict), the card that replaces the one the user pressed.
    """

    update: str
    arg: Any = None
    update_id: str | None = None


class Reply(BaseModel):
    """Reply to the message that carried the event, with a rendered template.

    The template is rendered with ``context`` (and, after a query, ``result``) in ``locale`` (default: the
    organization's), where it is sent: in the router, never in a workflow. A message pushed again under a
    new event id gets no second reply while Feishu dedupes the reply's uuid (1 hour): the uuid is built
    from the message id, not the event id.
    """

    template: str
    context: dict[str, Any] = Field(default_factory=dict)
    message_id: str
    locale: str | None = None


class QueryWorkflow(_WorkflowAction):
    """Query a workflow's state; with ``reply``, answer the user with it at once.

    If no workflow runs under this ID, ``reply_missing`` (when given) is sent instead.
    """

    query: str
    reply: Reply | None = None
    reply_missing: Reply | None = None


Action = StartWorkflow | SignalWithStart | SignalWorkflow | UpdateWorkflow | QueryWorkflow | Reply
