"""Settings of the documents scenario: who answers for each hospital, the reminder ladder, the tables.

Every key has a default; a site (a hospital) overrides what ``SITE_OVERRIDABLE`` allows: its responsible
people, its head, its ladder. Unknown keys are errors (:class:`engine.sdk.PluginSettings`).
"""

from __future__ import annotations

import re
from datetime import time

from pydantic import Field, field_validator

from engine.sdk import EscalationStep, LadderSettings, PluginSettings

ROLES = ("responsible", "head")
"""Who an escalation rung goes to: the hospital's responsible people again, or the hospital's head."""


def default_ladder() -> LadderSettings:
    """3 and 1 days before the deadline and on it, to the responsible people; after it, two more working
    days to them and every other working day to the hospital's head (twice); working days, 09:00."""
    return LadderSettings(
        before_days=[3, 1], on_due=True,
        after=[EscalationStep(every_days=1, to="responsible", times=2),
               EscalationStep(every_days=2, to="head", times=2)],
        working_days_only=True, send_at=time(9, 0))


class RoundFields(PluginSettings):
    """Field names of the rounds table (one row per round; a row added there sends the round)."""

    round_id: str = "轮次编号"  # empty: the engine writes one (DOC-<record id>)
    title: str = "标题"
    kind: str = "类型"  # 阅知 / 上报 (or read / upload)
    body: str = "说明"
    link: str = "链接"
    deadline: str = "截止日期"
    sites: str = "医院"  # a multi select or text of site ids or names; empty: every hospital
    sender: str = "发起人"


class AnswerFields(PluginSettings):
    """Field names of the answers table (one row per round × hospital, kept in step)."""

    key: str = "编号"  # "<round id>/<site id>": the upsert key
    round_id: str = "轮次编号"
    title: str = "标题"
    site: str = "医院"
    responsible: str = "负责人"
    status: str = "状态"
    answered_by: str = "回复人"
    answered_at: str = "回复时间"
    deadline: str = "截止日期"
    late: str = "逾期"
    files: str = "材料"
    reminders: str = "提醒次数"
    escalated: str = "已上报院长"


class DocumentsSettings(PluginSettings):
    """Everything an organization (or a hospital) configures for rounds of documents."""

    app_token: str = "bascnDocuments"
    rounds_table_id: str = "tblRounds"
    answers_table_id: str = "tblAnswers"
    fields: RoundFields = Field(default_factory=RoundFields)
    # Feishu's Bitable events name fields by id, not by name: give the id of the rounds table's round-id
    # field ({"round_id": "fldXXXX"}) so a round id typed into a new row keys its round; without it the
    # round takes DOC-<record id> and writes that into the row
    field_ids: dict[str, str] = Field(default_factory=dict)
    answer_fields: AnswerFields = Field(default_factory=AnswerFields)
    # headquarters: who gets the live status card and the summary of every round (the sender too)
    hq_open_ids: list[str] = Field(default_factory=list)
    # per hospital (site settings): who answers a round, and the hospital's head (院长) hears when late
    responsible_open_ids: list[str] = Field(default_factory=list)
    head_open_id: str = ""
    ladder: LadderSettings = Field(default_factory=default_ladder)
    # a round still open this many days after its deadline closes; who never answered stays "missing"
    close_after_days: int = Field(30, ge=1)

    @field_validator("ladder")
    @classmethod
    def _roles(cls, value: LadderSettings) -> LadderSettings:
        unknown = [step.to for step in value.after if step.to not in ROLES]
        if unknown:
            raise ValueError(f"ladder.after[].to is one of {', '.join(ROLES)}, not {', '.join(unknown)}")
        return value


SITE_OVERRIDABLE = ("responsible_open_ids", "head_open_id", "ladder")

ROUND_PATTERN = re.compile(r"DOC-[0-9A-Z][0-9A-Z-]{1,30}", re.IGNORECASE)
"""What a round id looks like ("DOC-2612-QUALITY"); a file whose name holds one answers that round."""
