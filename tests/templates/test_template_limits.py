"""Hostile override templates are refused within their limits, off the event loop, and the message still goes out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.template_limits import render_message_off_loop
from engine.templates import TemplateEngine, TemplateError, TemplateRefused

HUGE_STRING = "收到 {{ 'a' * 200000000 }}"
NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}收到"
HUGE_OUTPUT = "{% for i in range(100000) %}{{ i }} is a long line of text repeated many times\n{% endfor %}"
HUGE_PADDING = "{{ 'x' | center(2000000000) }}"


def plugin_dir(root: Path) -> Path:
    folder = root / "plugin"
    for locale in ("zh_CN", "en_US"):
        (folder / locale).mkdir(parents=True)
        (folder / locale / "note.j2").write_text("收到 {{ text }}（{{ '─' * 4 }}）", encoding="utf-8")
    (folder / "samples").mkdir()
    (folder / "samples" / "note.json").write_text('{"text": "hi"}', encoding="utf-8")
    return folder


def override(root: Path, source: str) -> Path:
    folder = root / "overrides"
    (folder / "demo" / "zh_CN").mkdir(parents=True, exist_ok=True)
    (folder / "demo" / "zh_CN" / "note.j2").write_text(source, encoding="utf-8")
    return folder


@pytest.fixture
def isolated(tmp_path: Path) -> Iterator[TemplateEngine]:
    engine = TemplateEngine({"demo": plugin_dir(tmp_path)}, isolate_overrides=True)
    assert engine._isolated is not None
    engine._isolated.seconds = 1.0  # the production deadline is 3 s; a test need not wait that long
    try:
        yield engine
    finally:
        engine._isolated.close()


def test_a_huge_string_is_refused_before_it_is_built(tmp_path: Path) -> None:
    engine = TemplateEngine({"demo": plugin_dir(tmp_path)})  # in process: the sandbox's own limit
    began = time.perf_counter()
    with pytest.raises(TemplateRefused, match=r"'\*' would build 200,000,000 items"):
        engine.render("demo:note", {"text": "x"}, locale="zh_CN", override_dir=override(tmp_path, HUGE_STRING))
    assert time.perf_counter() - began < 1.0
    # what templates really do with `*` still works
    assert engine.render("demo:note", {"text": "x"}, locale="zh_CN") == "收到 x（────）"


def test_the_output_stops_at_its_limit(tmp_path: Path) -> None:
    engine = TemplateEngine({"demo": plugin_dir(tmp_path)})
    with pytest.raises(TemplateRefused, match="output passed 524,288 characters"):
        engine.render("demo:note", {}, locale="zh_CN", override_dir=override(tmp_path, HUGE_OUTPUT))


def test_nested_loops_are_stopped_at_the_deadline_and_the_next_render_works(
        isolated: TemplateEngine, tmp_path: Path) -> None:
    hostile = override(tmp_path, NESTED_LOOPS)
    began = time.perf_counter()
    with pytest.raises(TemplateRefused, match="took longer than 1 s") as refused:
        isolated.render_message("demo:note", {"text": "x"}, locale="zh_CN", override_dir=hostile)
    assert refused.value.template == "demo:note"
    assert time.perf_counter() - began < 1.0 + 5.0  # the deadline, plus starting the render process
    (hostile / "demo" / "zh_CN" / "note.j2").write_text("改写：{{ text }}", encoding="utf-8")
    isolated.clear_cache()
    message = isolated.render_message("demo:note", {"text": "x"}, locale="zh_CN", override_dir=hostile)
    assert message.content == '{"text":"改写：x"}'  # a fresh process took over from the killed one


def test_an_edited_override_renders_after_clear_cache(isolated: TemplateEngine, tmp_path: Path) -> None:
    folder = override(tmp_path, "第一版 {{ text }}")
    assert isolated.render("demo:note", {"text": "x"}, locale="zh_CN", override_dir=folder) == "第一版 x"
    (folder / "demo" / "zh_CN" / "note.j2").write_text("第二版 {{ text }}", encoding="utf-8")
    isolated.clear_cache()
    assert isolated.render("demo:note", {"text": "x"}, locale="zh_CN", override_dir=folder) == "第二版 x"


def test_memory_is_capped_in_the_render_process(isolated: TemplateEngine, tmp_path: Path) -> None:
    with pytest.raises(TemplateRefused, match="memory"):
        isolated.render("demo:note", {}, locale="zh_CN", override_dir=override(tmp_path, HUGE_PADDING))


def test_the_startup_check_reports_a_hostile_override(isolated: TemplateEngine, tmp_path: Path) -> None:
    problems = isolated.check_all(override_dir=override(tmp_path, NESTED_LOOPS))
    assert [type(p) for p in problems] == [TemplateRefused] and "demo:note" in str(problems[0])


async def test_sending_falls_back_to_the_shipped_template_without_blocking_the_loop(
        isolated: TemplateEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    beating = asyncio.create_task(ticker())
    with caplog.at_level(logging.WARNING, logger="engine.template_limits"):
        message = await render_message_off_loop(isolated, "demo:note", {"text": "hi"}, locale="zh_CN",
                                                override_dir=override(tmp_path, NESTED_LOOPS),
                                                tz="Asia/Shanghai", org_id="acme")
    beating.cancel()
    assert message.content == '{"text":"收到 hi（────）"}'  # the plugin's own template
    assert ticks >= 10  # the loop kept running through the second of the refused render
    assert "override template demo:note of organization acme refused" in caplog.text


def test_a_filter_that_cannot_reach_the_render_processes_is_named(tmp_path: Path) -> None:
    engine = TemplateEngine({"demo": plugin_dir(tmp_path)}, {"shout": lambda value: str(value).upper()},
                            isolate_overrides=True)
    try:
        assert engine.render("demo:note", {"text": "x"}, locale="zh_CN") == "收到 x（────）"  # in process
        with pytest.raises(TemplateError, match="'shout' cannot be used in an organization's override template"):
            engine.render("demo:note", {"text": "x"}, locale="zh_CN",
                          override_dir=override(tmp_path, "{{ text | shout }}"))
    finally:
        assert engine._isolated is not None
        engine._isolated.close()
