"""The engine's parts for one process, built once from the config and the loaded plugins.

Expensive parts (the template engine, the Feishu client, which imports lark-oapi) are built on first
use, so ``engine plugins list`` or ``engine config check`` stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from engine.config import EngineConfig
from engine.plugins import PluginSet

if TYPE_CHECKING:
    from engine.feishu.client import FeishuClient
    from engine.templates import TemplateEngine

_current: EngineApp | None = None


@dataclass
class EngineApp:
    config: EngineConfig
    plugins: PluginSet
    feishu_base_url: str | None = None  # set when the local stand-in serves this process
    temporal: Any = None  # the process's Temporal client, for activities that query other workflows
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def templates(self) -> TemplateEngine:
        from engine.templates import TemplateEngine

        # organizations' overrides render in processes with a deadline (engine/template_limits.py)
        return TemplateEngine(self.plugins.template_dirs(), self.plugins.template_filters(), isolate_overrides=True)

    @cached_property
    def feishu(self) -> FeishuClient:
        from engine.feishu.client import FeishuClient

        # FEISHU_* variables (set by `engine dev` and the test kit for the stand-in) win over the file
        return FeishuClient.from_config(self.config)


def set_current_app(app: EngineApp | None) -> None:
    """Make ``app`` reachable from activities and ingress pages of this process."""
    global _current
    _current = app


def current_app() -> EngineApp:
    """The running engine's parts, for plugin activities (never call it from workflow code)."""
    if _current is None:
        raise RuntimeError("no engine app is running in this process")
    return _current
