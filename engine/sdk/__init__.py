"""The engine's public surface for scenario plugins: a plugin imports ``engine.sdk`` and nothing else of it.

Everything here is documented in docs/sdk.md (a test keeps the page and ``__all__`` in step), and is
re-exported from the module that owns it, so there is one definition of each name. Anything of the
engine not listed here is internal and may change without notice.

Safe to import inside Temporal's workflow sandbox (``with workflow.unsafe.imports_passed_through():``):
nothing here does I/O at import time; lark-oapi is imported only when a command opens a client.
"""

from __future__ import annotations

from collections.abc import Callable

from engine import actions as actions
from engine import csvexport as csvexport
from engine import labels as labels
from engine import scan_page as scan_page
from engine.actions import (
    Action,
    QueryWorkflow,
    Reply,
    SignalWithStart,
    SignalWorkflow,
    StartWorkflow,
    UpdateWorkflow,
)
from engine.approvals import ApprovalDecision, ApprovalRequest, ApprovalSettings, request_approval
from engine.cli import Fail, pass_app, run_async
from engine.clock import BusinessClock
from engine.config import OrgContext
from engine.context import SiteContext, UnknownContext, resolve_site_context
from engine.dormant import is_dormant, query_running, signal_running
from engine.events import (
    ApprovalStatusChanged,
    BitableRecordChanged,
    BotAddedToChat,
    CardAction,
    EngineEvent,
    FeishuEvent,
    Mention,
    MessageReceived,
    UserCreated,
    UserDeleted,
)
from engine.feishu.errors import FeishuError
from engine.hookspecs import hookimpl
from engine.ids import split_workflow_id, workflow_id
from engine.rules import (
    Decision,
    EscalationStep,
    LadderSettings,
    ReportMonth,
    WorkCalendar,
    add_months,
    all_notices,
    as_zone,
    china_calendar_covers,
    cron_iter,
    cron_next,
    first_workday_of_month,
    next_due,
    next_notice,
    report_month,
    validate_cron,
)
from engine.scenario import PluginSettings, Scenario, ScheduleSpec
from engine.scenario_events import raise_event
from engine.sdk import cells as cells
from engine.sdk import feishu as feishu
from engine.sdk.status import StatusQuestion, message_key, question_locale, status_question, status_reply
from engine.secrets import SecretSpec
from engine.services import Services, command_services
from engine.texts import Texts
from engine.workflow_support import (
    Deferred,
    Refusal,
    SeenEvents,
    activity_options,
    feishu_call,
    load_site_context,
    send_to_each,
    workflow_org,
)

# The hooks' callback types, for typed hook implementations:
# ``def register_scenarios(register: RegisterScenario) -> None`` and
# ``def ingress_routes(register: RegisterRoute) -> None``.
RegisterScenario = Callable[[Scenario], None]
RegisterRoute = Callable[..., None]

__all__ = [
    "Action",
    "ApprovalDecision",
    "ApprovalRequest",
    "ApprovalSettings",
    "ApprovalStatusChanged",
    "BitableRecordChanged",
    "BotAddedToChat",
    "BusinessClock",
    "CardAction",
    "Decision",
    "Deferred",
    "EngineEvent",
    "EscalationStep",
    "Fail",
    "FeishuError",
    "FeishuEvent",
    "LadderSettings",
    "Mention",
    "MessageReceived",
    "OrgContext",
    "PluginSettings",
    "QueryWorkflow",
    "Refusal",
    "RegisterRoute",
    "RegisterScenario",
    "Reply",
    "ReportMonth",
    "Scenario",
    "ScheduleSpec",
    "SecretSpec",
    "SeenEvents",
    "Services",
    "SignalWithStart",
    "SignalWorkflow",
    "SiteContext",
    "StartWorkflow",
    "StatusQuestion",
    "Texts",
    "UnknownContext",
    "UpdateWorkflow",
    "UserCreated",
    "UserDeleted",
    "WorkCalendar",
    "actions",
    "activity_options",
    "add_months",
    "all_notices",
    "as_zone",
    "cells",
    "china_calendar_covers",
    "command_services",
    "cron_iter",
    "cron_next",
    "csvexport",
    "feishu",
    "feishu_call",
    "first_workday_of_month",
    "hookimpl",
    "is_dormant",
    "labels",
    "load_site_context",
    "message_key",
    "next_due",
    "next_notice",
    "pass_app",
    "query_running",
    "question_locale",
    "raise_event",
    "report_month",
    "request_approval",
    "resolve_site_context",
    "run_async",
    "scan_page",
    "send_to_each",
    "signal_running",
    "split_workflow_id",
    "status_question",
    "status_reply",
    "validate_cron",
    "workflow_id",
    "workflow_org",
]
