"""The scenario's own I/O: settings and the asset row for a run, user profiles, the calibration guard,
and table reads for the views. Messages and Bitable writes go through the engine's Feishu activities.
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity

from engine.feishu.errors import FeishuError

from .models import AssetInfo, AssetRef, AssetRow, GuardResult, LoanContext, UserProfile

log = logging.getLogger(__name__)

CALIBRATION = "device_calibration"


def _app() -> Any:
    from engine.runtime.app import current_app

    return current_app()


def _settings(org_id: str) -> tuple[Any, Any]:
    org = _app().config.org(org_id)
    return org, org.settings("asset_loan")


async def _rows(org_id: str, asset_id: str | None = None) -> list[AssetRow]:
    from .bitable import read_asset

    org, settings = _settings(org_id)
    flt = None
    if asset_id:
        flt = {"conjunction": "and",
               "conditions": [{"field_name": settings.fields.asset_id, "operator": "is", "value": [asset_id]}]}
    records = await _app().feishu.bitable_search(settings.app_token, settings.asset_table_id, filter=flt)
    zone = ZoneInfo(org.timezone)
    rows = [read_asset(r.record_id, r.fields, settings, zone) for r in records]
    return [r for r in rows if r.asset_id and (not asset_id or r.asset_id == asset_id)]


@activity.defn(name="asset_loan.load_context")
async def load_context(ref: AssetRef) -> LoanContext:
    """The organization's effective settings and the asset's row (None when it is not in the table)."""
    org, settings = _settings(ref.org)
    rows = await _rows(ref.org, ref.asset_id) if ref.asset_id else []  # no asset: settings only
    # the row's loan columns are the workflow's to write: hand back only the descriptive ones
    info = _info(rows[0]) if rows else None
    return LoanContext(settings=settings.model_dump(mode="json"), timezone=org.timezone, locale=org.locale,
                       asset=info, calibration_enabled=org.enabled(CALIBRATION))


def _info(row: AssetRow) -> AssetInfo:
    return AssetInfo.model_validate(row.model_dump(include=set(AssetInfo.model_fields)))


@activity.defn(name="asset_loan.user_profile")
async def user_profile(ref: AssetRef) -> UserProfile:
    """Name and departments of a user (contact API); unknown users get an empty profile.

    Through the engine's client: rate-limited, a refused token re-fetched, and a Feishu failure raised as
    the retryable (or not) error every Feishu activity raises.
    """
    try:
        user = await _app().feishu.get_user(ref.open_id)
    except FeishuError as error:
        raise error.to_application_error() from error
    if user is None:
        log.info("no profile for %s: unknown to the contact API or outside the app's scope", ref.open_id)
        return UserProfile(open_id=ref.open_id)
    return UserProfile(open_id=ref.open_id, name=str(user.get("name") or ""),
                       department_ids=[str(d) for d in user.get("department_ids") or []])


def _find_status(state: Any) -> tuple[str, str]:
    """``(status, reason)`` out of another workflow's ``state`` answer (a dict or a model).

    device_calibration's cycle answers with ``phase`` (active, sent_out, overdue, quarantined, paused,
    retired...); ``status``/``state`` and a ``quarantined`` flag are read too, so a later shape still works.
    """
    data = state.model_dump(mode="json") if hasattr(state, "model_dump") else state
    if not isinstance(data, dict):
        return "", ""
    status = data.get("phase") or data.get("status") or data.get("state") or ""
    if data.get("quarantined") is True:
        status = "quarantined"
    reason = data.get("reason") or data.get("paused_reason") or data.get("quarantine_reason") or ""
    history = data.get("history")
    if not reason and isinstance(history, list) and history and isinstance(history[-1], dict):
        reason = history[-1].get("reason") or ""
    return str(status), str(reason)


async def guard_for(app: Any, org: Any, asset_id: str) -> GuardResult:
    """Whether device_calibration keeps this asset out of service (no workflow or query there: no guard).

    Reads the calibration cycle's ``state`` query (``{org}:device_calibration:{asset_id}``) and compares its
    status with ``guard_statuses``; shared by the Loan workflow's activity and the scan page.
    """
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError, RPCStatusCode

    from engine.ids import workflow_id

    settings = org.settings("asset_loan")
    if not org.enabled(CALIBRATION) or app.temporal is None:
        return GuardResult()
    handle = app.temporal.get_workflow_handle(workflow_id(org.id, CALIBRATION, asset_id))
    try:
        state = await handle.query("state")
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            return GuardResult()
        raise
    except WorkflowQueryFailedError:
        return GuardResult()
    status, reason = _find_status(state)
    if status in settings.guard_statuses:
        label = f"{CALIBRATION} {status}"
        return GuardResult(blocked=True, source=CALIBRATION, status=status,
                           reason=f"{label}: {reason}" if reason else label)
    return GuardResult(source=CALIBRATION, status=status)


@activity.defn(name="asset_loan.check_guard")
async def check_guard(ref: AssetRef) -> GuardResult:
    """The calibration guard, from the Loan workflow."""
    org, _ = _settings(ref.org)
    return await guard_for(_app(), org, ref.asset_id)


@activity.defn(name="asset_loan.list_assets")
async def list_assets(ref: AssetRef) -> list[AssetRow]:
    """Every asset row (for the weekly summary and "what do I have")."""
    return await _rows(ref.org)


ACTIVITIES = [load_context, user_profile, check_guard, list_assets]
