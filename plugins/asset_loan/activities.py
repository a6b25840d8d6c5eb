"""The scenario's own I/O: the asset row and its site's context for a run, user profiles, the calibration
guard, and table reads for the views. Messages and Bitable writes go through the engine's Feishu activities.

The worker builds :class:`AssetLoanActivities` once with the engine's services (``engine.sdk.Services``):
the Feishu client, the Temporal client and the organizations' site contexts are passed in.
"""

from __future__ import annotations

import logging
from typing import Any

from temporalio import activity

from engine.sdk import FeishuError, OrgContext, Services, SiteContext, workflow_id

from .bitable import read_asset, read_history
from .config import AssetLoanSettings
from .models import (
    AssetInfo,
    AssetMeta,
    AssetRef,
    AssetRow,
    GuardResult,
    LoanContext,
    OutcomeData,
    OutcomeRequest,
    UserProfile,
)

log = logging.getLogger(__name__)

SCENARIO = "asset_loan"
CALIBRATION = "device_calibration"


def _info(row: AssetRow) -> AssetInfo:
    return AssetInfo.model_validate(row.model_dump(include=set(AssetInfo.model_fields)))


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


async def guard_for(parts: Any, org: OrgContext, asset_id: str) -> GuardResult:
    """Whether device_calibration keeps this asset out of service (no workflow or query there: no guard).

    ``parts`` has the Temporal client as ``temporal`` (the activities' services, or the ingress's app).
    Reads the calibration cycle's ``state`` query (``{org}:device_calibration:{asset_id}``) and compares
    its status with ``guard_statuses``; shared by the Loan workflow's activity and the scan page.
    """
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError, RPCStatusCode

    settings = org.settings(SCENARIO)
    if not org.enabled(CALIBRATION) or parts.temporal is None:
        return GuardResult()
    handle = parts.temporal.get_workflow_handle(workflow_id(org.id, CALIBRATION, asset_id))
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


class AssetLoanActivities:
    """asset_loan's activities, bound to the engine's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def _rows(self, org_id: str, asset_id: str | None = None) -> list[AssetRow]:
        # the tables are the group's (sites override loan rules, not where the tables are)
        group = self.services.context(org_id, SCENARIO)
        settings = group.settings_as(AssetLoanSettings)
        flt = None
        if asset_id:
            flt = {"conjunction": "and",
                   "conditions": [{"field_name": settings.fields.asset_id, "operator": "is", "value": [asset_id]}]}
        try:
            records = await self.services.feishu.bitable_search(settings.app_token, settings.asset_table_id,
                                                                filter=flt)
        except FeishuError as error:
            raise error.to_application_error() from error
        rows = [read_asset(r.record_id, r.fields, settings, group.zone) for r in records]
        return [r for r in rows if r.asset_id and (not asset_id or r.asset_id == asset_id)]

    @activity.defn(name="asset_loan.load_context")
    async def load_context(self, ref: AssetRef) -> LoanContext:
        """The asset's row and its site's context: effective settings, zone, locale, working days.

        Without an asset (the views) or for an asset without a site, the group's context. The row's loan
        columns are the workflow's to write: only the descriptive ones are handed back.
        """
        rows = await self._rows(ref.org, ref.asset_id) if ref.asset_id else []
        info = _info(rows[0]) if rows else None
        site: SiteContext = self.services.context(ref.org, SCENARIO, info.site if info else None)
        return LoanContext(settings=site.settings, timezone=site.timezone, locale=site.locale, asset=info,
                           calibration_enabled=site.enabled(CALIBRATION), site=site)

    @activity.defn(name="asset_loan.user_profile")
    async def user_profile(self, ref: AssetRef) -> UserProfile:
        """Name and departments of a user (contact API); unknown users get an empty profile.

        Through the engine's client: rate-limited, a refused token re-fetched, and a Feishu failure raised
        as the retryable (or not) error every Feishu activity raises.
        """
        try:
            user = await self.services.feishu.get_user(ref.open_id)
        except FeishuError as error:
            raise error.to_application_error() from error
        if user is None:
            log.info("no profile for %s: unknown to the contact API or outside the app's scope", ref.open_id)
            return UserProfile(open_id=ref.open_id)
        return UserProfile(open_id=ref.open_id, name=str(user.get("name") or ""),
                           department_ids=[str(d) for d in user.get("department_ids") or []])

    @activity.defn(name="asset_loan.check_guard")
    async def check_guard(self, ref: AssetRef) -> GuardResult:
        """The calibration guard, from the Loan workflow."""
        return await guard_for(self.services, self.services.org(ref.org), ref.asset_id)

    @activity.defn(name="asset_loan.list_assets")
    async def list_assets(self, ref: AssetRef) -> list[AssetRow]:
        """Every asset row (for the weekly summary and "what do I have")."""
        return await self._rows(ref.org)

    @activity.defn(name="asset_loan.outcome_data")
    async def outcome_data(self, request: OutcomeRequest) -> OutcomeData:
        """The history rows recorded before ``request.until`` (every page of the table), and each asset's name
        and site id (the asset table may name a site by id or by name) for the monthly card."""
        group = self.services.context(request.org, SCENARIO)
        settings = group.settings_as(AssetLoanSettings)
        try:
            records = await self.services.feishu.bitable_search(settings.app_token, settings.history_table_id)
        except FeishuError as error:
            raise error.to_application_error() from error
        rows = [row for record in records
                if (row := read_history(record.fields, settings, group.zone)) is not None and row.at < request.until]
        sites = self.services.org(request.org).config.sites
        by_name = {site.name: site_id for site_id, site in sites.items() if site.name}
        return OutcomeData(rows=rows, assets={
            a.asset_id: AssetMeta(name=a.name, site=a.site if a.site in sites else by_name.get(a.site, a.site))
            for a in await self._rows(request.org)})


ACTIVITIES = [AssetLoanActivities]
