"""Finding, rendering, overriding, caching and checking templates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from engine.templates import TemplateEngine, TemplateError


def test_names_are_qualified_and_skip_partials(engine: TemplateEngine) -> None:
    assert engine.names() == ["demo:greeting", "demo:only_zh", "demo:reminder.card", "demo:summary.post"]


def test_locale_picks_the_file(engine: TemplateEngine) -> None:
    context = {"name": "Li", "site": "East"}
    assert engine.render("demo:greeting", context, locale="zh_CN") == "你好，Li！（East）"
    assert engine.render("demo:greeting", context, locale="en_US") == "Hello, Li! (East)"


def test_missing_locale_falls_back_and_filters_follow_the_file(engine: TemplateEngine) -> None:
    # the only file is Chinese, so relative_days speaks Chinese too rather than mixing languages
    assert engine.render("demo:only_zh", {}, locale="en_US") == "只有中文 2 天后"


def test_missing_everywhere_is_a_clear_error(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError) as caught:
        engine.render("demo:nope", {}, locale="en_US")
    assert caught.value.template == "demo:nope"
    assert "not found in en_US or zh_CN" in str(caught.value)


@pytest.mark.parametrize(("name", "cause"), [
    ("other:greeting", "no scenario 'other'"),
    ("greeting", "'scenario:name'"),
    ("demo:../secrets", "cannot leave"),
])
def test_bad_names(engine: TemplateEngine, name: str, cause: str) -> None:
    with pytest.raises(TemplateError, match="template") as caught:
        engine.render(name, {}, locale="zh_CN")
    assert cause in str(caught.value)


def test_unsupported_locale_and_zone(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError, match="unsupported locale 'fr_FR'"):
        engine.render("demo:greeting", {"name": "x", "site": "y"}, locale="fr_FR")
    with pytest.raises(TemplateError, match="unknown timezone"):
        engine.render("demo:greeting", {"name": "x", "site": "y"}, locale="zh_CN", tz="Mars/Base")


def test_override_wins_for_its_locale_only(engine: TemplateEngine, tmp_path: Path) -> None:
    overrides = tmp_path / "org_templates"
    (overrides / "demo" / "zh_CN").mkdir(parents=True)
    (overrides / "demo" / "zh_CN" / "greeting.j2").write_text("{{ name }}，您好", encoding="utf-8")
    context = {"name": "Li", "site": "East"}

    assert engine.render("demo:greeting", context, locale="zh_CN", override_dir=overrides) == "Li，您好"
    assert engine.render("demo:greeting", context, locale="en_US", override_dir=overrides) == "Hello, Li! (East)"
    # another organization (no override dir) still gets the plugin's template
    assert engine.render("demo:greeting", context, locale="zh_CN") == "你好，Li！（East）"


def test_override_of_a_partial_reaches_includes(engine: TemplateEngine, tmp_path: Path) -> None:
    overrides = tmp_path / "org_templates"
    (overrides / "demo" / "en_US").mkdir(parents=True)
    (overrides / "demo" / "en_US" / "_footer.j2").write_text(" -- {{ site }} Hospital", encoding="utf-8")
    text = engine.render("demo:greeting", {"name": "Li", "site": "East"}, locale="en_US", override_dir=overrides)
    assert text == "Hello, Li! -- East Hospital"


def test_compiled_templates_are_cached(engine: TemplateEngine, plugin_dir: Path) -> None:
    context = {"name": "Li", "site": "East"}
    first = engine.render("demo:greeting", context, locale="en_US")
    (plugin_dir / "en_US" / "greeting.j2").write_text("changed", encoding="utf-8")
    assert engine.render("demo:greeting", context, locale="en_US") == first  # no re-read on the send path
    engine.clear_cache()
    assert engine.render("demo:greeting", context, locale="en_US") == "changed"


def test_undefined_variable_is_an_error(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError) as caught:
        engine.render("demo:greeting", {"name": "Li"}, locale="zh_CN")
    assert "undefined variable" in str(caught.value)
    assert "'site' is undefined" in str(caught.value)
    assert isinstance(caught.value.__cause__, UndefinedError)


def test_undefined_variable_reports_the_line(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"en_US/multi.j2": "line one\n{{ known }}\n{{ unknown }}\n"})
    with pytest.raises(TemplateError) as caught:
        engine.render("x:multi", {"known": 1}, locale="en_US")
    assert caught.value.line == 3


@pytest.mark.parametrize("source", [
    "{{ ().__class__.__mro__ }}",
    "{{ name.__class__.__mro__[1].__subclasses__() }}",
    "{{ items.append(4) }}",  # the immutable sandbox keeps the caller's data as it was
])
def test_sandbox_blocks_unsafe_access(make_engine: Callable[..., TemplateEngine], source: str) -> None:
    engine = make_engine({"en_US/evil.j2": source})
    items = [1, 2, 3]
    with pytest.raises(TemplateError, match="blocked by the sandbox") as caught:
        engine.render("x:evil", {"name": "x", "items": items}, locale="en_US")
    assert isinstance(caught.value.__cause__, SecurityError)
    assert items == [1, 2, 3]


def test_syntax_error_names_template_and_line(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"zh_CN/broken.j2": "ok\n{% if x %}\nno end"})
    with pytest.raises(TemplateError) as caught:
        engine.render("x:broken", {"x": True}, locale="zh_CN")
    assert caught.value.template == "x:broken"
    assert "syntax error" in caught.value.cause
    assert caught.value.path is not None and caught.value.path.name == "broken.j2"


def test_filter_errors_become_template_errors(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"en_US/when.j2": "{{ when | local_dt }}"})
    with pytest.raises(TemplateError, match="aware datetime"):
        engine.render("x:when", {"when": "2026-11-23T09:00:00"}, locale="en_US")


def test_plugin_filters_are_added(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"en_US/shout.j2": "{{ 'hi' | shout }}"}, filters={"shout": lambda s: s.upper() + "!"})
    assert engine.render("x:shout", {}, locale="en_US") == "HI!"


@pytest.mark.parametrize("name", ["relative_days", "json_str", "upper", "tojson"])
def test_filter_clash_with_a_builtin_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=f"'{name}'"):
        TemplateEngine({"x": tmp_path}, filters={name: str})


def test_sample_context(engine: TemplateEngine, plugin_dir: Path) -> None:
    assert engine.sample_context("demo:greeting") == {"name": "王医生", "site": "东院"}
    (plugin_dir / "samples" / "greeting.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TemplateError, match="must be a JSON object"):
        engine.sample_context("demo:greeting")
    (plugin_dir / "samples" / "greeting.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(TemplateError, match="not valid JSON"):
        engine.sample_context("demo:greeting")


def test_check_all_passes_on_a_good_plugin(engine: TemplateEngine) -> None:
    assert engine.check_all() == []


def test_check_all_catches_broken_templates_and_missing_samples(engine: TemplateEngine, plugin_dir: Path) -> None:
    (plugin_dir / "en_US" / "greeting.j2").write_text("Hello {{ name }", encoding="utf-8")  # syntax
    (plugin_dir / "zh_CN" / "summary.post.j2").write_text('{"zh_cn": {"title": "{{ tilte }}", "content": []}}',
                                                          encoding="utf-8")  # misspelt variable
    (plugin_dir / "en_US" / "new.j2").write_text("no sample for me", encoding="utf-8")

    errors = engine.check_all()

    found = {(error.template, error.locale) for error in errors}
    assert found == {("demo:greeting", "en_US"), ("demo:summary.post", "zh_CN"), ("demo:new", None)}
    by_name = {error.template: error for error in errors}
    assert "syntax error" in by_name["demo:greeting"].cause
    assert "'tilte' is undefined" in by_name["demo:summary.post"].cause
    assert "no sample context" in by_name["demo:new"].cause


def test_check_all_with_overrides(engine: TemplateEngine, tmp_path: Path) -> None:
    overrides = tmp_path / "org_templates"
    (overrides / "demo" / "zh_CN").mkdir(parents=True)
    (overrides / "demo" / "zh_CN" / "greeting.j2").write_text("{{ nmae }}", encoding="utf-8")
    (overrides / "demo" / "zh_CN" / "greting.j2").write_text("typo in the file name", encoding="utf-8")
    (overrides / "elsewhere.j2").write_text("wrong place", encoding="utf-8")

    errors = engine.check_all(override_dir=overrides)

    messages = sorted(str(error) for error in errors)
    assert len(errors) == 3, messages
    assert any("'nmae' is undefined" in m for m in messages)
    assert any("demo:greting" in m and "replaces no template" in m for m in messages)
    assert any("elsewhere.j2" in m and "<scenario>/<locale>/<name>.j2" in m for m in messages)


def test_unknown_filter_is_caught_at_compile_time(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"en_US/f.j2": "{{ name | shout }}"})
    with pytest.raises(TemplateError, match="cannot compile: No filter named 'shout'"):
        engine.render("x:f", {"name": "x"}, locale="en_US")


def test_include_problems_name_the_outer_template(make_engine: Callable[..., TemplateEngine]) -> None:
    engine = make_engine({"en_US/a.j2": "{% include '_gone' %}", "en_US/b.j2": "{% include '_bad' %}",
                          "en_US/_bad.j2": "{% for %}"})
    with pytest.raises(TemplateError, match="cannot include 'x:_gone'") as caught:
        engine.render("x:a", {}, locale="en_US")
    assert caught.value.template == "x:a"
    with pytest.raises(TemplateError, match="syntax error in an included template") as caught:
        engine.render("x:b", {}, locale="en_US")
    assert caught.value.path is not None and caught.value.path.name == "_bad.j2"
