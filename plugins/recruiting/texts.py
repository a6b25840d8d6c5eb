"""What people read in toasts, in their language (zh_CN, en_US). Internal reasons stay in the history.

A toast answers a card press: the workflow picks the text here in the site's locale, so an English-speaking
hospital's approver never reads Chinese and a Chinese one never reads English. The rules' own reasons
("cannot go back from offer to applied") are recorded in the workflow history and the Bitable rows.
"""

from __future__ import annotations

from typing import Any

from engine.sdk import Texts

ROLE_LABELS = Texts({
    "zh_CN": {"recruiter": "招聘专员", "interviewer": "面试官", "manager": "招聘经理", "hospital_head": "院长",
              "hr": "人事", "group_hr": "集团人力资源部", "it": "信息科", "admin": "行政", "trainer": "培训负责人"},
    "en_US": {"recruiter": "recruiter", "interviewer": "interviewer", "manager": "recruiting manager",
              "hospital_head": "hospital head", "hr": "HR", "group_hr": "group HR", "it": "IT", "admin": "admin",
              "trainer": "trainer"},
})

_TEXTS = Texts({
    "zh_CN": {
        "approved": "{req}：已批准",
        "rejected": "{req}：已驳回",
        "not_waiting": "{req} 当前没有待审批的环节",
        "not_your_turn": "{req} 正等待{role}审批",
        "in_feishu": "{req} 正在飞书审批中，请在「审批」应用里处理",
        "closed": "{req}：已关闭",
        "filled": "{req}：已招满",
        "already_closed": "{req} 已结束，无需再关闭",
        "moved": "{name}：{stage}",
        "already_at": "{name} 已在「{stage}」阶段",
        "went_back": "{name} 不能退回「{stage}」阶段",
        "ended": "{name} 的投递已结束，不能再移动",
        "unknown_stage": "没有「{stage}」这个阶段",
        "item_done": "{name}：{item} ✓",
        "no_item": "{name} 没有未完成的「{item}」事项",
        "owner_ticks": "{name} 的「{item}」应由{role}或人事完成",
        "hr_ticks": "{name} 的「{item}」应由人事完成",
        "leaving": "{name}：已开始离职流程",
        "already_leaving": "{name} 已在离职流程中",
        "ok": "已处理",
    },
    "en_US": {
        "approved": "{req}: approved",
        "rejected": "{req}: rejected",
        "not_waiting": "{req} is not waiting for an approval",
        "not_your_turn": "{req} waits for the {role}'s decision",
        "in_feishu": "{req} is being approved in Feishu: decide it in the Approval app",
        "closed": "{req}: closed",
        "filled": "{req}: filled",
        "already_closed": "{req} has already ended",
        "moved": "{name}: {stage}",
        "already_at": "{name} is already at stage {stage}",
        "went_back": "{name} cannot go back to stage {stage}",
        "ended": "{name}'s application has ended and cannot move",
        "unknown_stage": "There is no stage {stage}",
        "item_done": "{name}: {item} ✓",
        "no_item": "{name} has no open item {item}",
        "owner_ticks": "{item} for {name} is ticked by the {role} or HR",
        "hr_ticks": "{item} for {name} is ticked by HR",
        "leaving": "{name}: offboarding started",
        "already_leaving": "{name} is already offboarding",
        "ok": "Done",
    },
})


def say(locale: str | None, key: str, **values: Any) -> str:
    """The text ``key`` in ``locale`` (zh_CN when it is not one of ours), with ``values`` filled in."""
    return _TEXTS(key, locale, **values)


def role(locale: str | None, name: str) -> str:
    """A role's name as people call it."""
    return ROLE_LABELS.get(name, locale)


def stage(locale: str | None, settings: Any, name: str) -> str:
    """A stage as people read it: the Bitable label (Chinese) in zh_CN, the stage's name in en_US."""
    return settings.stage_label(name) if (locale if locale in _TEXTS.locales else "zh_CN") == "zh_CN" else name


def locales() -> list[str]:
    return _TEXTS.locales


def text_keys() -> list[str]:
    """Every text's key (the same in each language: :class:`Texts` checks it when the plugin loads)."""
    return _TEXTS.keys()
