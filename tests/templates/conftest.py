"""A throwaway plugin template folder with text, post and card templates in both locales."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.templates import TemplateEngine

CARD_ZH = """\
{
  "schema": "2.0",
  "header": {"title": {"tag": "plain_text", "content": "校准提醒：{{ device | json_str }}"}},
  "body": {"elements": [
    {"tag": "markdown", "content": "到期：{{ due | local_date }}（{{ due | relative_days }}）\\n{{ note | json_str }}"},
    {"tag": "button", "text": {"tag": "plain_text", "content": "已知晓"},
     "behaviors": [{"type": "callback", "value": {{ {"action": "ack", "device": device} | json_value }}}]}
  ]}
}
"""

CARD_EN = """\
{
  "schema": "2.0",
  "header": {"title": {"tag": "plain_text", "content": "Calibration due: {{ device | json_str }}"}},
  "body": {"elements": [
    {"tag": "markdown", "content": "Due {{ due | local_date }} ({{ due | relative_days }})\\n{{ note | json_str }}"},
    {"tag": "button", "text": {"tag": "plain_text", "content": "Got it"},
     "behaviors": [{"type": "callback", "value": {"action": "ack", "device": "{{ device | json_str }}"}}]}
  ]}
}
"""

POST_ZH = """\
{"zh_cn": {"title": "周报", "content": [
{% for item in items %}
  [{"tag": "text", "text": "{{ item | json_str }}"}]{{ "," if not loop.last }}
{% endfor %}
]}}
"""

POST_EN = """\
{"en_us": {"title": "Weekly", "content": [
{% for item in items %}
  [{"tag": "text", "text": "{{ item | json_str }}"}]{{ "," if not loop.last }}
{% endfor %}
]}}
"""

FILES = {
    "zh_CN/greeting.j2": "你好，{{ name }}！{% include '_footer' %}",
    "en_US/greeting.j2": "Hello, {{ name }}!{% include '_footer' %}",
    "zh_CN/_footer.j2": "（{{ site }}）",
    "en_US/_footer.j2": " ({{ site }})",
    "zh_CN/only_zh.j2": "只有中文 {{ 2 | relative_days }}",
    "zh_CN/reminder.card.j2": CARD_ZH,
    "en_US/reminder.card.j2": CARD_EN,
    "zh_CN/summary.post.j2": POST_ZH,
    "en_US/summary.post.j2": POST_EN,
}

SAMPLES = {
    "greeting": {"name": "王医生", "site": "东院"},
    "only_zh": {},
    "reminder.card": {"device": "监护仪 M-1", "due": "2026-11-26", "now": "2026-11-23T09:00:00+08:00",
                      "note": "请联系设备科"},
    "summary.post": {"items": ["a", "b"]},
}


def write_plugin(root: Path, files: dict[str, str], samples: dict[str, Any]) -> Path:
    """Write ``files`` (relative path -> text) and ``samples`` (name -> context) under ``root``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "samples").mkdir(parents=True, exist_ok=True)
    for name, context in samples.items():
        (root / "samples" / f"{name}.json").write_text(json.dumps(context, ensure_ascii=False), encoding="utf-8")
    return root


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    return write_plugin(tmp_path / "demo_templates", FILES, SAMPLES)


@pytest.fixture
def engine(plugin_dir: Path) -> TemplateEngine:
    return TemplateEngine({"demo": plugin_dir})


@pytest.fixture
def make_engine(tmp_path: Path) -> Callable[..., TemplateEngine]:
    """An engine over one scenario ``x`` built from the given files and samples."""
    counter = iter(range(1000))

    def build(files: dict[str, str], samples: dict[str, Any] | None = None, **kwargs: Any) -> TemplateEngine:
        root = write_plugin(tmp_path / f"x{next(counter)}", files, samples or {})
        return TemplateEngine({"x": root}, **kwargs)

    return build
