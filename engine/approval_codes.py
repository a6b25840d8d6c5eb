"""Which Feishu approval definitions an engine config asks for, so the app can subscribe to each.

Feishu pushes an approval definition's ``approval_instance`` events only to apps that subscribed to it
(``POST /open-apis/approval/v4/approvals/{approval_code}/subscribe``, Feishu's "订阅审批事件" page).
``engine dev`` subscribes every code found here at start; ``engine approvals subscribe`` does it for a
production app.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from engine.approvals import ApprovalSettings
from engine.config import EngineConfig


def _found(value: Any) -> Iterator[str]:
    """The approval codes of every :class:`ApprovalSettings` inside ``value`` (a settings model)."""
    if isinstance(value, ApprovalSettings):
        if value.approval_code:
            yield value.approval_code
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _found(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _found(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _found(item)


def configured_approval_codes(config: EngineConfig) -> list[str]:
    """Every approval code the organizations' effective settings name (the group's and each site's), once."""
    codes: dict[str, None] = {}
    for org in config.orgs.values():
        for scenario in org.plugins:
            for site in (None, *org.site_ids):
                try:
                    settings = org.settings(scenario, site)
                except KeyError:  # a plugin that is not installed
                    continue
                codes.update(dict.fromkeys(_found(settings)))
    return list(codes)
