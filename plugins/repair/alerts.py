"""Faults detected, not typed: Prometheus Alertmanager's webhook opens, feeds and resolves repair tickets.

``POST /repair/alertmanager/{org}`` (served by the ingress, ``ingress_routes``) takes Alertmanager's
webhook body, version 4 (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config):
``{"version": "4", "status", "receiver", "groupKey", "alerts": [{"status": "firing"|"resolved", "labels",
"annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}], ...}``. Alertmanager presents the
organization's token as ``Authorization: Bearer <token>`` (its ``http_config.authorization.credentials``);
``engine repair alert-token --org <org>`` prints it. The token is derived from the organization's secret
(``REPAIR_ALERT_SECRET``, or the variable its ``alert_secret_env`` names) and compared in constant time.

One ticket per alert fingerprint (``BX-AL-<fingerprint>``): a firing alert opens it or adds to it, a
resolved one closes it. Answers: 200 with the tickets touched; 401 bad token; 400 a body that is not
that JSON; 413 a body over 1 MiB; 404 an organization that does not run the scenario.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SCENARIO = "repair"
TOKEN_PURPOSE = "alertmanager-token"
MAX_BODY = 1 << 20
log = logging.getLogger(__name__)


class Alert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    fingerprint: str = Field(pattern=r"^[0-9a-fA-F]{1,32}$")


class Payload(BaseModel):
    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


def tokens(org: Any) -> list[str]:
    """The bearer tokens ``org`` accepts: its current secret's, then those of previous secrets (rotation)."""
    return [key.hex() for key in org.keyring(SCENARIO).keys(TOKEN_PURPOSE)]


def _short(status: int, error: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _authorized(request: Request, org: Any) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    presented = given.strip().encode()
    # every candidate is compared, so the time taken does not say which one (or how much) matched
    return any([hmac.compare_digest(presented, token.encode()) for token in tokens(org)])


async def alertmanager(request: Request, app: Any) -> Response:
    """The webhook endpoint (see the module's docstring)."""
    org = app.config.orgs.get(request.path_params["org"])
    if org is None or not org.enabled(SCENARIO):
        return _short(404, "unknown organization")
    if not _authorized(request, org):
        log.info("alertmanager webhook for %s refused: bad or missing bearer token", org.id)
        return _short(401, "bad token")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return _short(413, "body too large")
    chunks, size = [], 0
    async for chunk in request.stream():  # read no further than the limit, whatever the body claims
        size += len(chunk)
        if size > MAX_BODY:
            return _short(413, "body too large")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        payload = Payload.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        log.info("alertmanager webhook for %s refused: %s at %s", org.id, first["type"], where)
        return _short(400, f"not an Alertmanager v4 webhook body ({where or 'body'}: {first['type']})")
    delivery = hashlib.sha256(body).hexdigest()[:16]  # Alertmanager retries a failed post with the same body
    touched = [await _apply(app, org, alert, delivery) for alert in payload.alerts]
    return JSONResponse({"tickets": [t for t in touched if t]})


async def _apply(app: Any, org: Any, alert: Alert, delivery: str) -> str:
    from temporalio.service import RPCError, RPCStatusCode

    from engine.sdk import workflow_id

    from .config import CATEGORIES, RepairSettings
    from .models import AlertNote, TicketInput
    from .rules import alert_ticket_number

    number = alert_ticket_number(alert.fingerprint)
    wid = workflow_id(org.id, SCENARIO, number)
    name = alert.labels.get("alertname", "")
    note = AlertNote(fingerprint=alert.fingerprint, status=alert.status, alertname=name,
                     summary=alert.annotations.get("summary", ""), starts_at=alert.startsAt,
                     ends_at=alert.endsAt if alert.endsAt and alert.endsAt.year > 1 else None,
                     event_id=f"alert:{alert.fingerprint}:{alert.status}:{delivery}")
    if alert.status == "resolved":
        # only an open ticket is resolved: a late or repeated "resolved" must not open a new one
        try:
            await app.temporal.get_workflow_handle(wid).signal("alert", note)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            return ""
        return number
    settings: RepairSettings = org.settings(SCENARIO)
    category = alert.labels.get("category", "")
    text = alert.annotations.get("summary") or alert.annotations.get("description") or name or "alert"
    ticket = TicketInput(
        ticket_id=number, source="alert", text=text, site=alert.labels.get("site", ""),
        location=alert.labels.get("location") or alert.labels.get("instance", ""),
        asset_id=alert.labels.get("asset", ""), reported_at=alert.startsAt,
        category=category if category in CATEGORIES else settings.alert_category)
    await app.temporal.start_workflow("repair.Ticket", ticket, id=wid, task_queue=app.config.temporal.task_queue,
                                      start_signal="alert", start_signal_args=[note])
    return number


def register(cli: Any) -> Any:
    """``engine repair alert-token --org <org>``: the bearer token to put in Alertmanager's config; returns the
    ``engine repair`` group."""
    import click

    from engine.sdk import Fail, pass_app

    @cli.group(name=SCENARIO, help="Repair tickets.")
    def group() -> None:
        pass

    @group.command(name="alert-token", help="Print the bearer token Alertmanager presents for an organization.")
    @click.option("--org", "org_id", required=True, help="Organization id of the config.")
    @pass_app
    def alert_token(state: Any, org_id: str) -> None:
        config = state.config()
        org = config.orgs.get(org_id)
        if org is None or not org.enabled(SCENARIO):
            raise Fail(f"organization {org_id!r} does not run the repair scenario",
                       hint="add \"repair\" to its plugins in the config")
        click.echo(tokens(org)[0])

    return group


ROUTES = [("/repair/alertmanager/{org}", alertmanager, ["POST"])]
