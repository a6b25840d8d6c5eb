"""The whole plugin API of the engine.

A scenario plugin is a module (or package) registered in the ``engine.plugins`` entry-point group whose
functions carry ``@hookimpl``. The engine calls hooks with keyword arguments only, never from workflow
code: everything a workflow needs is resolved when the worker starts or inside activities.

Every hook here is documented in README.md ("Writing a plugin") and has a test; a test checks both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from engine.actions import Action
    from engine.config import OrgContext
    from engine.events import FeishuEvent
    from engine.scenario import Scenario, ScheduleSpec

PROJECT = "engine"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_scenarios(register: Callable[[Scenario], None]) -> None:
    """Register the scenarios this plugin brings.

    Call ``register(Scenario(...))`` once per scenario. A scenario names its settings model, its
    Temporal workflows and activities (type names prefixed with the scenario name, e.g.
    ``device_calibration.CalibrationCycle``, because they are permanent), and its template folder.
    Called once when the engine starts; duplicate scenario, workflow, activity or template names stop
    the start-up with an error that names both plugins.
    """


@hookspec
def route_event(event: FeishuEvent, org: OrgContext) -> list[Action] | None:
    """Turn one normalized Feishu event into actions on this scenario's workflows.

    Called only for plugins the event's organization enabled. ``org`` carries the organization's id,
    timezone, locale and effective settings (``org.settings("device_calibration", site=...)``).
    Return a list of actions (:mod:`engine.actions`): start, signal-with-start, signal, update or query
    a workflow whose ID is ``{org}:{scenario}:{key}``; return ``None`` or ``[]`` when the event is not
    for this scenario. Must be fast and free of I/O: the router runs it while Feishu waits (3 s).
    """


@hookspec
def schedules(org: OrgContext) -> list[ScheduleSpec] | None:
    """Declare the recurring runs this scenario wants for one organization.

    Return :class:`engine.scenario.ScheduleSpec` items (a cron expression in the organization's
    timezone and the workflow to start). The engine keeps one Temporal schedule per organization and
    spec, ID ``{org}:{scenario}:schedule:{spec.id}``, and removes schedules no longer declared.
    """


@hookspec
def template_filters() -> dict[str, Callable[..., Any]] | None:
    """Return extra Jinja filters, ``{name: function}``, for every template of every plugin.

    Filters must be pure functions of their arguments. A name clash with another plugin's filter or a
    built-in engine filter stops the start-up.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``engine`` command line.

    ``cli`` is the top-level click group; add a group named after the scenario, e.g.
    ``engine asset_loan labels``. Commands get the loaded config through ``engine.cli.pass_app``.
    """


@hookspec
def ingress_routes(register: Callable[..., None]) -> None:
    """Serve extra HTTP pages from the ingress (for example a QR-code scan page).

    Call ``register(path, endpoint, methods=["GET"])`` with a Starlette endpoint
    ``async def endpoint(request, app) -> Response``; ``app`` gives access to the config, the router and
    the Feishu client. Paths must start with ``/{scenario}/``.
    """
