"""What a plugin registers: a scenario and the schedules it asks for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from temporalio.common import SearchAttributeKey

from engine.secrets import SecretSpec


class PluginSettings(BaseModel):
    """Base for a scenario's settings model: unknown keys are errors at every depth, not ignored."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Scenario:
    """One business scenario: its workflows, activities, settings model and templates.

    ``name`` is the scenario's permanent identifier: it prefixes workflow IDs (``{org}:{name}:{key}``),
    Temporal type names (``{name}.CalibrationCycle``) and template names (``{name}:reminder``).
    ``site_overridable`` lists the settings keys a site may override by default; an organization's
    config can narrow or widen that list. ``activities`` holds ``@activity.defn`` functions or classes:
    the worker builds a class once with the engine's :class:`engine.services.Services` and registers its
    ``@activity.defn`` methods (so activities get their dependencies passed in). ``secrets`` are the keys
    it needs per organization (:mod:`engine.secrets`): production refuses to start without them.
    ``search_attributes`` are the custom search attributes its workflows set
    (``temporalio.common.SearchAttributeKey``): a worker registers any the namespace lacks before it polls
    (:mod:`engine.runtime.search_attributes`), since a workflow that sets an unknown one fails its task.
    """

    name: str
    version: str
    settings_model: type[BaseModel]
    workflows: Sequence[type] = ()
    activities: Sequence[Callable[..., Any] | type] = ()
    templates: Path | None = None
    description: str = ""
    site_overridable: Sequence[str] = ()
    secrets: Sequence[SecretSpec] = ()
    search_attributes: Sequence[SearchAttributeKey[Any]] = ()


@dataclass(frozen=True)
class ScheduleSpec:
    """A recurring run a scenario wants for one organization.

    ``cron`` is read in the organization's timezone, in the engine's dialect (:mod:`engine.rules.cron`).
    ``workflow`` is the Temporal workflow type name, started with ``args``; each run gets the ID
    ``{org}:{scenario}:schedule:{id}`` plus the run time. ``setting`` names the plugin's settings key
    the cron comes from (e.g. ``"summary_cron"``), so a refused cron is reported where it is written.
    """

    id: str
    cron: str
    workflow: str
    args: Sequence[Any] = field(default_factory=tuple)
    description: str = ""
    # `engine dev` triggers the schedule once when it starts (e.g. a reconciliation that loads the
    # sample Bitable data into workflows), so a developer sees the scenario at work without waiting.
    run_on_dev_start: bool = False
    setting: str = ""
