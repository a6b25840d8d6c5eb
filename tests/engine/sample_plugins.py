"""Small plugins used by the engine's own tests (registered directly, not through entry points)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from temporalio import activity, workflow

from engine import actions
from engine.hookspecs import hookimpl
from engine.scenario import Scenario, ScheduleSpec

with workflow.unsafe.imports_passed_through():
    from engine.feishu import requests as fr
    from engine.workflow_support import SeenEvents, feishu_call

TEMPLATES = Path(__file__).parent / "sample_templates"


class EchoSettings(BaseModel):
    greeting: str = "hello"
    lead_days: list[int] = Field(default_factory=lambda: [30, 7, 1])
    escalation: dict[str, int] = Field(default_factory=lambda: {"every_days": 1, "times": 3})


class Ping(BaseModel):
    event_id: str
    text: str
    sender: str


@workflow.defn(name="echo.Conversation")
class Conversation:
    """Collects pings, answers each with a message, and ends after `stop`."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        self.seen = SeenEvents()
        self.done = False

    @workflow.run
    async def run(self, chat: str) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return self.pings

    @workflow.signal(name="ping")
    async def ping(self, ping: Ping) -> None:
        if not self.seen.first_time(ping.event_id):
            return
        self.pings.append(ping.text)
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=workflow.info().workflow_id.split(":")[0], to=fr.Recipient(id=ping.sender),
            template="echo:pong", context={"text": ping.text, "count": len(self.pings)},
            idempotency_key=f"{workflow.info().workflow_id}:pong:{ping.event_id}"))

    @workflow.update(name="stop")
    async def stop(self) -> dict[str, Any]:
        self.done = True
        return {"toast": f"stopped after {len(self.pings)}"}

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {"pings": self.pings, "count": len(self.pings)}


@activity.defn(name="echo.wall_clock")
async def wall_clock() -> str:
    """What an activity believes the time is (code that reads the wall clock, e.g. a report date)."""
    return datetime.now(UTC).isoformat()


@workflow.defn(name="echo.Timer")
class Timer:
    """Sleeps `days`, then sends one reminder: the smallest long-lived workflow."""

    @workflow.run
    async def run(self, days: int, to: str) -> str:
        await workflow.sleep(timedelta(days=days))
        seen = await workflow.execute_activity(wall_clock, schedule_to_close_timeout=timedelta(minutes=1))
        await feishu_call(fr.SEND_MESSAGE, fr.SendMessage(
            org=workflow.info().workflow_id.split(":")[0], to=fr.Recipient(id=to), template="echo:pong",
            context={"text": f"{days} days passed", "count": 0},
            idempotency_key=f"{workflow.info().workflow_id}:timer"))
        return seen


class EchoPlugin:
    """Routes text messages that mention the bot into one Conversation workflow per chat."""

    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="echo", version="1.0", settings_model=EchoSettings,
                          workflows=[Conversation, Timer], activities=[wall_clock], templates=TEMPLATES,
                          site_overridable=["greeting"]))

    @hookimpl
    def route_event(self, event: Any, org: Any) -> list[actions.Action] | None:
        from engine.events import CardAction, EngineEvent, MessageReceived

        if isinstance(event, MessageReceived) and event.mentions_bot:
            if event.text.strip() == "status":
                return [actions.QueryWorkflow(scenario="echo", key=event.chat_id, query="state",
                                              reply=actions.Reply(template="echo:status", message_id=event.message_id),
                                              reply_missing=actions.Reply(template="echo:missing",
                                                                          message_id=event.message_id))]
            return [actions.SignalWithStart(
                scenario="echo", key=event.chat_id, workflow="echo.Conversation", signal="ping",
                arg=Ping(event_id=event.event_id, text=event.text, sender=event.sender_open_id),
                start_args=[event.chat_id])]
        if isinstance(event, EngineEvent) and event.event_type == "echo.ping":  # raised by a command
            chat = str(event.payload["chat"])
            return [actions.SignalWithStart(
                scenario="echo", key=chat, workflow="echo.Conversation", signal="ping",
                arg=Ping(event_id=event.event_id, text=str(event.payload["text"]),
                         sender=str(event.payload["sender"])), start_args=[chat])]
        if isinstance(event, CardAction) and event.action_value.get("op") == "stop":
            return [actions.UpdateWorkflow(scenario="echo", key=event.action_value["chat"], update="stop",
                                           update_id=event.event_id)]
        return None

    @hookimpl
    def schedules(self, org: Any) -> list[ScheduleSpec]:
        return [ScheduleSpec(id="daily", cron="0 9 * * *", workflow="echo.Timer", args=[1, "ou_admin"])]

    @hookimpl
    def template_filters(self) -> dict[str, Any]:
        return {"shout": lambda text: str(text).upper() + "!"}

    @hookimpl
    def register_commands(self, cli: Any) -> None:
        import click

        @cli.command(name="echo-hello")
        def hello() -> None:
            """Say hello (a plugin command)."""
            click.echo("hello from echo")

    @hookimpl
    def ingress_routes(self, register: Any) -> None:
        from starlette.responses import JSONResponse

        async def page(request: Any, app: Any) -> JSONResponse:
            return JSONResponse({"orgs": list(app.config.orgs)})

        register("/echo/info", page)


class OtherSettings(BaseModel):
    enabled_feature: bool = False


class OtherPlugin:
    """A second scenario, to check that an organization reaches only what it enabled."""

    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        register(Scenario(name="other", version="0.1", settings_model=OtherSettings))

    @hookimpl
    def route_event(self, event: Any, org: Any) -> list[actions.Action]:
        return [actions.StartWorkflow(scenario="other", key="x", workflow="other.Nothing")]


class MisspeltPlugin:
    @hookimpl
    def route_events(self, event: Any, org: Any) -> None:  # not a hook: check_pending catches it
        return None


class BrokenScenarioPlugin:
    @hookimpl
    def register_scenarios(self, register: Any) -> None:
        raise RuntimeError("boom")
