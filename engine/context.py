"""The organization/site context of a scenario: one engine activity resolves it, workflows hold it.

For (organization, site, scenario) it gives what a scenario needs to decide anything: the effective
settings (the group's, with the site's overrides that ``site_overridable`` allows, exactly what
``engine config check`` validated and ``engine config show --site`` prints), the site's zone and locale
(the organization's when the site sets none), its working-day calendar (the maintained China calendar
plus the organization's own ``holidays`` and ``workdays``), its business clock and the scenarios it
enabled. :class:`SiteContext` is a frozen pydantic model, so it travels through Temporal unchanged.

Workflows call the activity (``engine.site_context``) through :func:`engine.sdk.load_site_context`;
code outside workflows (routing, ingress pages, activities) calls :func:`resolve_site_context` with the
:class:`~engine.config.OrgContext` it was given.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from engine.clock import BusinessClock

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from engine.config import EngineConfig, OrgContext
    from engine.rules.workdays import WorkCalendar

SITE_CONTEXT = "engine.site_context"  # Temporal activity type name (permanent)

M = TypeVar("M", bound=BaseModel)


class SiteContextRequest(BaseModel):
    """Which context to resolve. ``site`` is a site id or a site's name from the config; ``None`` or an
    unknown site gives the group's standard."""

    org: str
    scenario: str
    site: str | None = None


class SiteContext(BaseModel):
    """The effective context of one scenario at one site (or the group's, with ``site=None``).

    ``settings`` is the effective settings as JSON; read it typed with :meth:`settings_as`.
    ``holidays``/``workdays`` are the organization's extras on top of the China calendar.
    """

    model_config = ConfigDict(frozen=True)

    org: str
    scenario: str
    site: str | None = None
    site_name: str = ""
    timezone: str = "Asia/Shanghai"
    locale: str = "zh_CN"
    settings: dict[str, Any] = Field(default_factory=dict)
    holidays: list[dt.date] = Field(default_factory=list)
    workdays: list[dt.date] = Field(default_factory=list)
    clock: BusinessClock = Field(default_factory=BusinessClock)
    enabled_scenarios: list[str] = Field(default_factory=list)

    def settings_as(self, model: type[M]) -> M:
        """The settings as the scenario's settings model (validated again; they were when loaded)."""
        return model.model_validate(self.settings)

    @property
    def zone(self) -> ZoneInfo:
        """The site's zone (a real ``ZoneInfo``, also inside the workflow sandbox)."""
        from engine.rules.workdays import as_zone

        return as_zone(self.timezone)

    def calendar(self) -> WorkCalendar:
        """The site's working days: the China calendar with the organization's holidays and workdays."""
        from engine.rules.workdays import WorkCalendar

        return WorkCalendar(self.timezone, holidays=self.holidays, workdays=self.workdays)

    def enabled(self, scenario: str) -> bool:
        """Whether the organization enabled ``scenario`` (e.g. another plugin this one works with)."""
        return scenario in self.enabled_scenarios


class UnknownContext(LookupError):
    """The organization is not in the config, or it did not enable the scenario."""


def site_id(org: OrgContext, site: str | None) -> str | None:
    """The config's id of ``site``, given as an id or as the site's name; None for the group or unknown."""
    if not site:
        return None
    site = site.strip()
    if site in org.config.sites:
        return site
    for candidate, config in org.config.sites.items():
        if config.name and config.name == site:
            return candidate
    return None


def resolve_site_context(org: OrgContext, scenario: str, site: str | None = None) -> SiteContext:
    """The context of ``scenario`` for ``site`` of ``org`` (an unknown site gets the group's standard)."""
    if not org.enabled(scenario):
        raise UnknownContext(f"organization {org.id!r} has not enabled scenario {scenario!r}")
    found = site_id(org, site)
    site_config = org.config.sites.get(found) if found else None
    return SiteContext(
        org=org.id, scenario=scenario, site=found, site_name=(site_config.name or found) if site_config else "",
        timezone=(site_config.timezone if site_config and site_config.timezone else org.timezone),
        locale=(site_config.locale if site_config and site_config.locale else org.locale),
        settings=org.settings(scenario, found).model_dump(mode="json"),
        holidays=[dt.date.fromisoformat(d) for d in org.config.holidays],
        workdays=[dt.date.fromisoformat(d) for d in org.config.workdays],
        clock=org.config.clock, enabled_scenarios=list(org.plugins))


class ContextActivities:
    """The ``engine.site_context`` activity, bound to one config (the worker passes it in)."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config

    def all(self) -> list[Any]:
        return [self.site_context]

    @activity.defn(name=SITE_CONTEXT)
    async def site_context(self, request: SiteContextRequest) -> SiteContext:
        """Resolve ``request``; an unknown organization or scenario fails at once (retrying cannot fix it)."""
        try:
            org = self.config.org(request.org)
            return resolve_site_context(org, request.scenario, request.site)
        except (KeyError, UnknownContext) as error:
            raise ApplicationError(str(error).strip("'\""), type="UnknownContext", non_retryable=True) from error
