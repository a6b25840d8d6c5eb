"""Finding, loading and checking plugins.

Plugins come from the ``engine.plugins`` entry-point group, the same way for the five shipped scenarios
and for a third-party package. Each loads in its own try/except, so one broken plugin is reported by
name and the others still load. ``ENGINE_LOAD_PLUGINS`` (comma-separated entry-point names) and the
config's ``[plugins] load`` are allowlists.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from engine import hookspecs
from engine.notices import SCENARIO, TEMPLATES
from engine.scenario import Scenario

if TYPE_CHECKING:
    from temporalio.common import SearchAttributeKey

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "engine.plugins"
ENGINE_TEMPLATES = SCENARIO
"""The name under which the engine's own templates are addressed (``engine:help``); no scenario may take it."""
ENGINE_TEMPLATES_DIR = TEMPLATES
ALLOWLIST_ENV = "ENGINE_LOAD_PLUGINS"
# "module" or "module:attribute" items, comma-separated: plugins loaded without packaging them
# (a plugin author's work in progress under `engine dev`, the engine's end-to-end tests).
EXTRA_MODULES_ENV = "ENGINE_PLUGIN_MODULES"


class PluginSetupError(Exception):
    """Two plugins claim the same name, or a plugin registered something unusable."""


@dataclass
class PluginRecord:
    """What the engine knows of one plugin, loaded or not."""

    name: str
    module: str
    version: str = ""
    error: str | None = None
    scenarios: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)


@dataclass
class PluginSet:
    """The loaded plugins and the scenarios they registered, checked for clashes."""

    pm: pluggy.PluginManager
    records: dict[str, PluginRecord]
    scenarios: dict[str, Scenario]
    scenario_plugin: dict[str, object]  # scenario name -> the plugin object that registered it

    @property
    def failures(self) -> dict[str, str]:
        return {name: r.error for name, r in self.records.items() if r.error}

    def hook_for(self, hook_name: str, enabled: Iterable[str]) -> Any:
        """A hook caller that reaches only the plugins of the ``enabled`` scenarios."""
        keep = {id(self.scenario_plugin[name]) for name in enabled if name in self.scenario_plugin}
        remove = [p for p in self.scenario_plugin.values() if id(p) not in keep]
        if not remove:
            return getattr(self.pm.hook, hook_name)
        return self.pm.subset_hook_caller(hook_name, remove_plugins=remove)

    def template_dirs(self) -> dict[str, Path]:
        """Each scenario's templates folder, and the engine's own (help reply, admin notices) as ``engine``."""
        dirs = {name: s.templates for name, s in self.scenarios.items() if s.templates is not None}
        return {ENGINE_TEMPLATES: ENGINE_TEMPLATES_DIR, **dirs}

    def template_filters(self) -> dict[str, Callable[..., Any]]:
        filters: dict[str, Callable[..., Any]] = {}
        for result in self.pm.hook.template_filters():
            for name, function in (result or {}).items():
                if name in filters:
                    raise PluginSetupError(f"template filter {name!r} is registered by two plugins")
                filters[name] = function
        return filters

    def workflows(self) -> list[type]:
        return [w for s in self.scenarios.values() for w in s.workflows]

    def search_attributes(self) -> list[SearchAttributeKey[Any]]:
        """Every scenario's custom search attributes (:attr:`engine.scenario.Scenario.search_attributes`)."""
        return [k for s in self.scenarios.values() for k in s.search_attributes]

    def activities(self, services: Any = None) -> list[Callable[..., Any]]:
        """Every scenario's activities; an activity class is built once with ``services``
        (:class:`engine.services.Services`) and contributes its ``@activity.defn`` methods."""
        found: list[Callable[..., Any]] = []
        for scenario in self.scenarios.values():
            for item in scenario.activities:
                if not isinstance(item, type):
                    found.append(item)
                    continue
                if services is None:
                    raise PluginSetupError(f"activity class {item.__name__} of {scenario.name!r} needs the "
                                           "engine's services (build activities with PluginSet.activities(services))")
                instance = item(services)
                found += [getattr(instance, function.__name__) for function in activity_functions(item)]
        return found


def activity_functions(item: Any) -> list[Callable[..., Any]]:
    """The activities an entry of ``Scenario.activities`` brings: itself, or a class's ``@activity.defn`` methods."""
    from temporalio import activity

    if not isinstance(item, type):
        return [item]
    return [member for member in vars(item).values()
            if callable(member) and activity._Definition.from_callable(member) is not None]


def new_manager() -> pluggy.PluginManager:
    """A fresh manager; tests build their own instead of sharing a global one."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _allowlist(extra: Iterable[str] | None) -> set[str] | None:
    names: set[str] | None = None
    env = os.environ.get(ALLOWLIST_ENV)
    if env is not None:
        names = {n.strip() for n in env.split(",") if n.strip()}
    if extra is not None:
        names = set(extra) if names is None else names & set(extra)
    return names


def _distribution_version(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.version if dist is not None else ""


def load_plugins(
    *,
    allow: Iterable[str] | None = None,
    modules: Mapping[str, ModuleType | object] | None = None,
    entry_points: bool = True,
) -> PluginSet:
    """Load plugins from entry points (and ``modules``, registered directly, as tests do).

    A plugin that fails to import, has a misspelt hook, or registers a broken scenario is recorded with
    its error and left out; the rest load.
    """
    pm = new_manager()
    records: dict[str, PluginRecord] = {}
    allowed = _allowlist(allow)

    candidates: list[tuple[str, str, str, Callable[[], object]]] = []
    if entry_points:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            candidates.append((ep.name, ep.value, _distribution_version(ep), ep.load))
    for name, module in (modules or {}).items():
        candidates.append((name, getattr(module, "__name__", repr(module)), "", lambda m=module: m))
    for spec in filter(None, (s.strip() for s in os.environ.get(EXTRA_MODULES_ENV, "").split(","))):
        candidates.append((spec.rsplit(":", 1)[-1].rsplit(".", 1)[-1], spec, "", lambda s=spec: _import_spec(s)))

    for name, module_name, version, load in candidates:
        if allowed is not None and name not in allowed:
            continue
        record = PluginRecord(name=name, module=module_name, version=version)
        records[name] = record
        try:
            plugin = load()
            if pm.is_registered(plugin) or pm.get_plugin(name) is not None:
                raise PluginSetupError(f"plugin {name!r} is registered twice")
            pm.register(plugin, name=name)
        except Exception as error:  # one broken plugin must not stop the others
            record.error = f"{type(error).__name__}: {error}"
            log.error("plugin %s failed to load: %s", name, record.error)
            continue
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as error:
            pm.unregister(plugin)
            record.error = f"unknown hook: {error}"
            log.error("plugin %s: %s", name, record.error)
            continue
        record.hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])

    scenarios, scenario_plugin = _collect_scenarios(pm, records)
    return PluginSet(pm=pm, records=records, scenarios=scenarios, scenario_plugin=scenario_plugin)


def _import_spec(spec: str) -> object:
    """``package.module`` or ``package.module:Attribute`` (a class is instantiated)."""
    import importlib

    module_name, _, attribute = spec.partition(":")
    target: object = importlib.import_module(module_name)
    if attribute:
        target = getattr(target, attribute)
        if isinstance(target, type):
            target = target()
    return target


def _collect_scenarios(
    pm: pluggy.PluginManager, records: dict[str, PluginRecord]
) -> tuple[dict[str, Scenario], dict[str, object]]:
    from temporalio import activity, workflow

    scenarios: dict[str, Scenario] = {}
    owners: dict[str, object] = {}
    owner_names: dict[str, str] = {}
    type_owner: dict[str, str] = {}

    for name, plugin in list(pm.list_name_plugin()):
        impl = getattr(plugin, "register_scenarios", None)
        if impl is None:
            continue
        found: list[Scenario] = []
        try:
            impl(register=found.append)
            for scenario in found:
                _check_scenario(scenario)
        except Exception as error:
            records[name].error = f"register_scenarios failed: {type(error).__name__}: {error}"
            log.error("plugin %s: %s", name, records[name].error)
            pm.unregister(plugin)
            continue
        for scenario in found:
            if scenario.name in scenarios:
                raise PluginSetupError(
                    f"scenario {scenario.name!r} is registered by plugins "
                    f"{owner_names[scenario.name]!r} and {name!r}")
            kinds = [("workflow", workflow._Definition.must_from_class(w).name) for w in scenario.workflows]
            kinds += [("activity", activity._Definition.must_from_callable(a).name)
                      for item in scenario.activities for a in activity_functions(item)]
            for kind, type_name in kinds:
                if not type_name.startswith(scenario.name + "."):
                    raise PluginSetupError(
                        f"{kind} {type_name!r} of plugin {name!r} must be named '{scenario.name}.<Name>' "
                        "(Temporal type names are permanent and shared by all plugins)")
                if type_name in type_owner:
                    raise PluginSetupError(
                        f"{kind} {type_name!r} is registered by plugins {type_owner[type_name]!r} and {name!r}")
                type_owner[type_name] = name
            scenarios[scenario.name] = scenario
            owners[scenario.name] = plugin
            owner_names[scenario.name] = name
            records[name].scenarios.append(scenario.name)
    return scenarios, owners


def _check_scenario(scenario: Scenario) -> None:
    if not isinstance(scenario, Scenario):
        raise PluginSetupError(f"register() takes a Scenario, got {type(scenario).__name__}")
    if not scenario.name.isidentifier():
        raise PluginSetupError(f"scenario name {scenario.name!r} must be a Python identifier")
    if scenario.name == ENGINE_TEMPLATES:
        raise PluginSetupError(f"scenario name {scenario.name!r} is the engine's own: choose another")
    if scenario.templates is not None and not Path(scenario.templates).is_dir():
        raise PluginSetupError(f"scenario {scenario.name!r}: templates folder {scenario.templates} is missing")
