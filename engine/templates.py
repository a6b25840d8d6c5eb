"""Message and card templates: sandboxed Jinja, named per plugin, overridable per organization.

Layout of a plugin's template folder (``Scenario.templates``)::

    templates/<name>.j2                                one template for every locale, English words in _()
    templates/locales/zh_CN/LC_MESSAGES/messages.po    the Chinese words (engine/template_catalogs.py)
    templates/samples/<name>.json                      a sample context, used by ``check_all`` and tests
    templates/<locale>/<name>.j2                       optional: a whole template for one locale

Templates are addressed as ``scenario:name`` (``device_calibration:reminder.card``). The suffix of the
name picks the message type: ``.card`` renders an interactive card (card JSON 2.0), ``.post`` a rich
text post, anything else a text message. Files whose name starts with ``_`` are partials: they can be
included (``{% include "_footer.card" %}``, resolved in the including template's scenario) but are not
templates of their own, so they need no sample.

Words are translated with Jinja's i18n extension (https://jinja.palletsprojects.com/en/stable/extensions/
#i18n-extension), new-style: ``{{ _("Due back: %(date)s", date=due | local_date) }}``, ``ngettext``,
``pgettext(context, text)`` for the same English translated two ways, ``{% trans %}`` blocks. The msgids are
English (en_US needs no catalog); each other locale's catalog must translate every one of them, else the
render fails and ``check_all`` names the message (never a silent fallback to English). In a card, put a
translated string in JSON with ``| json_str`` like any data: ``"{{ _("Bed %(bed)s", bed=bed) | json_str }}"``.

A file for the locale (``templates/<locale>/<name>.j2``) wins over the shared template: plugins whose
templates are not converted yet keep working, and an organization overrides a template by putting
``<override_dir>/<scenario>/<locale>/<name>.j2`` in its ``templates_dir``; the override wins over the
plugin's file for that locale.

Rendering runs in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` (the sandboxed environment that
also refuses to mutate the caller's lists and dicts) with ``StrictUndefined``, autoescaping off,
``trim_blocks`` and ``lstrip_blocks`` on. Built-in filters, on top of Jinja's own:

``local_dt(value, fmt=None)``
    An aware datetime or an ISO string with an offset, shown in the render's timezone:
    zh_CN ``2026年11月23日 09:00``, en_US ``2026-11-23 09:00``.
``local_date(value, fmt=None)``
    The same for the date only (a date, an aware datetime or an ISO string).
``relative_days(value, now=None)``
    An int is a number of days; a date or datetime is compared with ``now`` (the argument, else the
    context variable ``now``; the wall clock is never read): ``3 天后`` / ``in 3 days``, ``今天`` /
    ``today``, ``明天`` / ``tomorrow``, ``昨天`` / ``yesterday``, ``3 天前`` / ``3 days ago``.
``localized(field=None)``
    The render's language picked from data that carries each language (settings such as handover's
    categories): ``{{ {"zh": "病危", "en": "Critically ill"} | localized }}`` gives ``病危`` in zh_CN. Keys
    may be the locale (``zh_CN``), lower-cased (``zh_cn``) or the language (``zh``); none of them is an error.
    With ``field``, the keys are ``<field>_<language>``: ``{{ stage | localized("name") }}`` reads ``name_zh``.
``json_str``
    The value as the *content* of a JSON string, without the surrounding quotes: write
    ``"content": "{{ note | json_str }}"`` and quotes, backslashes and newlines in ``note`` stay inside.
``json_value``
    The value as a complete JSON literal (string with its quotes, number, object...): write
    ``"value": {{ {"action": "ack", "id": device_id} | json_value }}``.
``chart(kind, x=..., y=..., series=None, labels=None, names=None, title="", height=None)``
    Rows of the data as Feishu's card chart element, the whole JSON element (:mod:`engine.charts`):
    ``{{ by_category | chart("bar", x="category", y="tickets", labels=words, title=_("Tickets")) }},``.
``md_url``
    A URL from the data as a link target in card markdown: ``[摄片]({{ link | md_url | json_str }})``;
    http(s) only (anything else becomes empty), characters that could end the link percent-encoded.

Card markdown is escaped by default (:mod:`engine.larkmd`): in a ``.card`` template every string of the
context reaches the template with markdown syntax characters escaped (``[``, ``(``, ``<``, ``*``...), and
after rendering every string outside ``markdown`` / ``lark_md`` content is restored, so titles, button
values and URLs keep the data exactly. A link or an ``<at>`` mention in Bitable text therefore shows as
text. Markdown written in the template itself is the template's own and renders. In a text message,
data cannot open a tag (``<at user_id="all">``) or form a ``[label](url)`` link either: a zero-width space
is put after such a ``<`` and between ``](``.

Locale-aware filters and ``_()`` follow the locale of the template file actually rendered, so a file that fell
back to the other language (a template that exists in one locale folder only) does not mix two languages.

Every render is bounded (engine/template_limits.py): ``*`` and ``**`` cannot build huge values, the output
stops at a size; with ``isolate_overrides``, an organization's overrides render in separate processes with
a deadline and a memory cap. Going past a limit raises :class:`TemplateRefused`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import BaseLoader, StrictUndefined, Template, TemplateNotFound, TemplateSyntaxError, pass_context
from jinja2.defaults import DEFAULT_FILTERS
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from engine import larkmd
from engine.charts import chart_filter
from engine.config import SUPPORTED_LOCALES
from engine.template_catalogs import (
    LOCALES_DIR,
    SOURCE_LOCALE,
    Catalog,
    CatalogError,
    MissingTranslation,
    catalog_path,
    context_key,
    load_catalog,
)
from engine.template_limits import IsolatedRenderer, LimitedSandbox, RenderRefused, render_bounded

__all__ = [
    "CARD_MAX_BYTES",
    "DEFAULT_TZ",
    "POST_MAX_BYTES",
    "TEXT_MAX_BYTES",
    "RenderedMessage",
    "TemplateEngine",
    "TemplateError",
    "TemplateRefused",
    "format_local_date",
    "format_local_dt",
    "format_relative_days",
    "json_str",
    "json_value",
]

DEFAULT_TZ = "Asia/Shanghai"
# Feishu's limits (text 150 KB, cards and rich text 30 KB) are on the request body, where ``content`` travels
# as an escaped JSON string: sizes are measured on that escaped form, which errs on the safe side.
TEXT_MAX_BYTES = 150 * 1024
CARD_MAX_BYTES = 30 * 1024
POST_MAX_BYTES = 30 * 1024

TEMPLATE_SUFFIX = ".j2"
SAMPLES_DIR = "samples"
CARD_SUFFIX = ".card"
POST_SUFFIX = ".post"
POST_LANGUAGES = ("zh_cn", "en_us", "ja_jp")

_DATETIME_FORMATS = {"zh_CN": "%Y年%m月%d日 %H:%M", "en_US": "%Y-%m-%d %H:%M"}
_DATE_FORMATS = {"zh_CN": "%Y年%m月%d日", "en_US": "%Y-%m-%d"}


# ---------------------------------------------------------------------------------------------- errors


class TemplateError(Exception):
    """Any failure to find, compile, render or validate a template, naming the template and the cause."""

    def __init__(self, template: str, cause: str, *, locale: str | None = None, path: Path | None = None,
                 line: int | None = None) -> None:
        self.template = template
        self.cause = cause
        self.locale = locale
        self.path = path
        self.line = line
        where = f"template {template!r}"
        if locale:
            where += f" ({locale})"
        if path is not None:
            where += f" [{path}{f':{line}' if line else ''}]"
        elif line:
            where += f" line {line}"
        super().__init__(f"{where}: {cause}")


class TemplateRefused(TemplateError):
    """A render stopped by a limit on time, memory or size (engine/template_limits.py)."""


class RenderedMessage(BaseModel):
    """A rendered message, ready for Feishu's send and reply APIs (``msg_type`` and ``content``)."""

    model_config = ConfigDict(frozen=True)

    msg_type: Literal["text", "post", "interactive"]
    content: str


# -------------------------------------------------------------------------------------- pure formatting


def _parse_moment(value: Any) -> dt.datetime | dt.date:
    if isinstance(value, dt.date):  # datetime is a date subclass: both pass through
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text)  # refuses anything with a time part
        except ValueError:
            pass
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date or datetime") from None
    raise TypeError(f"expected a date, a datetime or an ISO string, got {type(value).__name__}")


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        # a naive time is ambiguous across the group's sites: refuse it instead of guessing a zone
        raise ValueError(f"{what} needs an aware datetime (with a UTC offset), got naive {value.isoformat()}")
    return value


def _local_day(value: Any, zone: ZoneInfo, what: str) -> dt.date:
    moment = _parse_moment(value)
    if isinstance(moment, dt.datetime):
        return _aware(moment, what).astimezone(zone).date()
    return moment


def _check_locale(locale: str) -> str:
    if locale not in SUPPORTED_LOCALES:
        raise ValueError(f"unsupported locale {locale!r} (supported: {', '.join(SUPPORTED_LOCALES)})")
    return locale


def format_local_dt(value: Any, *, locale: str, tz: str | ZoneInfo = DEFAULT_TZ, fmt: str | None = None) -> str:
    """An aware datetime (or ISO string with offset) as local time in ``tz``, in ``locale``'s format."""
    moment = _parse_moment(value)
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"local_dt needs a datetime, got the date {moment.isoformat()} (use local_date)")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    local = _aware(moment, "local_dt").astimezone(zone)
    return local.strftime(fmt or _DATETIME_FORMATS[_check_locale(locale)])


def format_local_date(value: Any, *, locale: str, tz: str | ZoneInfo = DEFAULT_TZ, fmt: str | None = None) -> str:
    """A date, an aware datetime or an ISO string as the local date in ``tz``, in ``locale``'s format."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return _local_day(value, zone, "local_date").strftime(fmt or _DATE_FORMATS[_check_locale(locale)])


def format_relative_days(value: Any, *, locale: str, tz: str | ZoneInfo = DEFAULT_TZ, now: Any = None) -> str:
    """``value`` relative to ``now`` in whole calendar days of ``tz``: "3 天后", "in 3 days", "today"...

    An int is taken as the number of days itself. A date or datetime needs ``now``: the caller's notion of
    the present (workflow time, frozen test time), never this process's wall clock.
    """
    _check_locale(locale)
    if isinstance(value, bool) or not isinstance(value, int | dt.date | str):
        raise TypeError(f"relative_days needs a number of days, a date or a datetime, got {type(value).__name__}")
    if isinstance(value, int):
        days = value
    else:
        if now is None:
            raise ValueError("relative_days needs `now` for a date: pass it as an argument or in the context")
        zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        days = (_local_day(value, zone, "relative_days") - _local_day(now, zone, "relative_days")).days
    if locale == "zh_CN":
        named = {0: "今天", 1: "明天", -1: "昨天"}
        return named.get(days) or (f"{days} 天后" if days > 0 else f"{-days} 天前")
    named = {0: "today", 1: "tomorrow", -1: "yesterday"}
    return named.get(days) or (f"in {days} days" if days > 0 else f"{-days} days ago")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_str(value: Any) -> str:
    """``value`` (as text) escaped for use *inside* a JSON string literal, without the quotes."""
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


def json_value(value: Any) -> str:
    """``value`` as a complete JSON literal (dates become ISO strings)."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


# ------------------------------------------------------------------------------ filters bound to a render


@dataclass(frozen=True)
class _RenderState:
    locale: str
    zone: ZoneInfo


# The locale and zone of the render in progress. A context variable (not a Jinja variable) so filters see
# it inside macros and includes too, and concurrent renders in threads or tasks never see each other's.
_RENDER_STATE: ContextVar[_RenderState | None] = ContextVar("engine_templates_render_state", default=None)


def _state() -> _RenderState:
    state = _RENDER_STATE.get()
    if state is None:
        raise RuntimeError("locale-aware template filters only run inside TemplateEngine.render")
    return state


def _local_dt_filter(value: Any, fmt: str | None = None) -> str:
    state = _state()
    return format_local_dt(value, locale=state.locale, tz=state.zone, fmt=fmt)


def _local_date_filter(value: Any, fmt: str | None = None) -> str:
    state = _state()
    return format_local_date(value, locale=state.locale, tz=state.zone, fmt=fmt)


def _localized_filter(value: Any, field: str | None = None) -> Any:
    state = _state()
    if not isinstance(value, Mapping):
        raise TypeError(f"localized needs a mapping of language to text, got {type(value).__name__}")
    keys = [state.locale, state.locale.lower(), state.locale.split("_", 1)[0]]
    if field is not None:
        keys = [f"{field}_{key}" for key in keys]
    for key in keys:
        if key in value:
            return value[key]
    # no silent fallback to another language: the data must carry this one
    raise ValueError(f"localized: no {state.locale} text among {sorted(map(str, value))}")


@pass_context
def _relative_days_filter(context: Context, value: Any, now: Any = None) -> str:
    state = _state()
    if now is None:
        now = context.get("now")  # the documented convention: callers put the present in the context
    return format_relative_days(value, locale=state.locale, tz=state.zone, now=now)


BUILTIN_FILTERS: dict[str, Callable[..., Any]] = {
    "local_dt": _local_dt_filter,
    "local_date": _local_date_filter,
    "relative_days": _relative_days_filter,
    "localized": _localized_filter,
    "json_str": json_str,
    "json_value": json_value,
    "md_url": larkmd.md_url,
    "chart": chart_filter,
}


# ------------------------------------------------------------------------------------- Jinja plumbing


@dataclass(frozen=True)
class _Located:
    path: Path
    locale: str


@dataclass(frozen=True)
class _Compiled:
    template: Template
    locale: str
    path: Path


class _Environment(LimitedSandbox, ImmutableSandboxedEnvironment):
    def __init__(self, engine: TemplateEngine, **options: Any) -> None:
        super().__init__(extensions=["jinja2.ext.i18n"], **options)

        # `_()`, `gettext`, `ngettext` and `{% trans %}` look the words up in the catalog of the scenario of the
        # template being rendered (includes and macros keep theirs), in the language of the render
        @pass_context
        def translate(context: Context, message: str) -> str:
            return engine._catalog(context.name, _state().locale).gettext(message)

        @pass_context
        def translate_plural(context: Context, singular: str, plural: str, n: int) -> str:
            return engine._catalog(context.name, _state().locale).ngettext(singular, plural, n)

        @pass_context
        def translate_in(context: Context, message_context: str, message: str) -> str:
            return engine._catalog(context.name, _state().locale).pgettext(message_context, message)

        self.install_gettext_callables(translate, translate_plural, newstyle=True,  # type: ignore[attr-defined]
                                       pgettext=translate_in)

    def join_path(self, template: str, parent: str) -> str:
        # `{% include "_footer.card" %}` means the including template's own scenario
        if ":" in template:
            return template
        return f"{parent.split(':', 1)[0]}:{template}"


class _Loader(BaseLoader):
    """Finds ``scenario:name`` for one (override_dir, locale): used for top-level templates and includes."""

    def __init__(self, engine: TemplateEngine, override_dir: Path | None, locale: str) -> None:
        self._engine = engine
        self._override_dir = override_dir
        self._locale = locale

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        try:
            located = self._engine._locate(template, self._locale, self._override_dir)
        except TemplateError as error:
            raise TemplateNotFound(template, error.cause) from None
        source = located.path.read_text(encoding="utf-8")
        # compiled templates are kept until clear_cache(): never re-stat files on the send path
        return source, str(located.path), lambda: True


def _compile_problem(error: TemplateSyntaxError) -> str:
    # an unknown filter or test is a TemplateAssertionError: the syntax is fine, the name is not
    return "syntax error" if type(error) is TemplateSyntaxError else "cannot compile"


def _traceback_line(error: BaseException, filename: str) -> int | None:
    """The last line of ``filename`` in the error's traceback (Jinja maps frames to template lines)."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


# ------------------------------------------------------------------------------------- message checks


def _objects(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in ``node`` with its path (``body.elements[2]``)."""
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _objects(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _objects(child, f"{path}[{index}]")


def _card_problems(card: Any) -> list[str]:
    if not isinstance(card, dict):
        return [f"a card must be a JSON object, found {type(card).__name__}"]
    problems = []
    if card.get("schema") != "2.0":
        problems.append(f'"schema" must be "2.0" (card JSON 2.0), found {card.get("schema")!r}')
    if "header" in card and not isinstance(card["header"], dict):
        problems.append('"header" must be an object')
    body = card.get("body")
    if not isinstance(body, dict) or not isinstance(body.get("elements"), list):
        problems.append('"body.elements" must be a list')
    for path, node in _objects(card, ""):
        if node.get("tag") == "button" and "value" in node and not isinstance(node["value"], dict):
            problems.append(f"{path}.value: a button's value must be an object")
        behaviors = node.get("behaviors")
        if behaviors is None:
            continue
        if not isinstance(behaviors, list):
            problems.append(f"{path}.behaviors must be a list")
            continue
        for index, behavior in enumerate(behaviors):
            # Feishu hands a callback's value back to us as the action payload; it must be an object
            if isinstance(behavior, dict) and behavior.get("type") == "callback" \
                    and not isinstance(behavior.get("value"), dict):
                problems.append(f"{path}.behaviors[{index}].value: a callback value must be an object")
    return problems


def _post_problems(post: Any) -> list[str]:
    if not isinstance(post, dict) or not post:
        return ['a post must be a JSON object keyed by language, e.g. {"zh_cn": {"title": ..., "content": [[...]]}}']
    problems = []
    for language, body in post.items():
        if language not in POST_LANGUAGES:
            problems.append(f"{language!r} is not a post language ({', '.join(POST_LANGUAGES)})")
            continue
        if not isinstance(body, dict):
            problems.append(f"{language} must be an object")
            continue
        if not isinstance(body.get("title", ""), str):
            problems.append(f"{language}.title must be a string")
        content = body.get("content")
        if not isinstance(content, list) or not all(isinstance(p, list) for p in content):
            problems.append(f"{language}.content must be a list of paragraphs (lists)")
            continue
        for p_index, paragraph in enumerate(content):
            for e_index, element in enumerate(paragraph):
                if not isinstance(element, dict) or not isinstance(element.get("tag"), str):
                    problems.append(f"{language}.content[{p_index}][{e_index}] must be an object with a tag")
    return problems


# --------------------------------------------------------------------------------------------- engine


class TemplateEngine:
    """Renders the templates of every loaded scenario; one instance per process, shared by all orgs.

    ``template_dirs`` maps a scenario name to its templates folder; ``filters`` are extra Jinja filters
    from plugins (a name clash with a built-in filter raises ``ValueError``).
    """

    def __init__(self, template_dirs: Mapping[str, Path],
                 filters: Mapping[str, Callable[..., Any]] | None = None, *,
                 isolate_overrides: bool = False) -> None:
        for scenario in template_dirs:
            if not scenario or ":" in scenario:
                raise ValueError(f"scenario name {scenario!r} cannot name templates (empty or contains ':')")
        self._dirs = {scenario: Path(folder) for scenario, folder in template_dirs.items()}
        self._filters = dict(BUILTIN_FILTERS)
        for name, function in (filters or {}).items():
            if name in BUILTIN_FILTERS or name in DEFAULT_FILTERS:
                raise ValueError(f"template filter {name!r} clashes with a built-in filter of the same name")
            if not name.isidentifier():
                raise ValueError(f"template filter {name!r} is not a valid filter name")
            if not callable(function):
                raise ValueError(f"template filter {name!r} is not callable")
            self._filters[name] = function
        self._environments: dict[tuple[Path | None, str], _Environment] = {}
        self._cache: dict[tuple[Path | None, str, str, str], _Compiled] = {}
        # renders that use an organization's overrides go to processes with a deadline (template_limits.py)
        self._isolated = IsolatedRenderer(self._dirs, {k: v for k, v in self._filters.items()
                                                       if k not in BUILTIN_FILTERS}) if isolate_overrides else None
        self._overridden: dict[tuple[Path, str], bool] = {}
        self._catalogs: dict[tuple[str, str], Catalog] = {}

    # -- names and samples

    def names(self) -> list[str]:
        """Every ``scenario:name`` with a template in at least one locale (partials excluded)."""
        return sorted({f"{scenario}:{name}" for scenario, folder in self._dirs.items()
                       for name in self._files(folder)})

    def sample_context(self, name: str) -> dict[str, Any]:
        """The sample context of ``name`` (``samples/<name>.json`` in its plugin's folder), freshly loaded."""
        scenario, short = self._split(name)
        path = self._dirs[scenario] / SAMPLES_DIR / f"{short}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TemplateError(name, f"no sample context: add {SAMPLES_DIR}/{short}.json", path=path) from None
        except json.JSONDecodeError as error:
            raise TemplateError(name, f"sample context is not valid JSON: {error}", path=path) from None
        if not isinstance(data, dict):
            raise TemplateError(name, "sample context must be a JSON object", path=path)
        return data

    # -- rendering

    def render(self, name: str, context: Mapping[str, Any], *, locale: str, override_dir: Path | None = None,
               tz: str = DEFAULT_TZ) -> str:
        """Render ``name`` (``scenario:name``) to text in ``locale``, the organization's override first."""
        if self._isolate(name, override_dir):
            assert self._isolated is not None
            text: str = self._isolated.call("render", name, dict(context), locale=locale,
                                            override_dir=override_dir, tz=tz)
            return text
        return self._render(name, context, locale, override_dir, tz)[0]

    def render_message(self, name: str, context: Mapping[str, Any], *, locale: str,
                       override_dir: Path | None = None, tz: str = DEFAULT_TZ) -> RenderedMessage:
        """Render and validate ``name`` as a Feishu message: ``.card`` interactive, ``.post`` post, else text."""
        if self._isolate(name, override_dir):
            assert self._isolated is not None
            rendered: RenderedMessage = self._isolated.call("render_message", name, dict(context), locale=locale,
                                                            override_dir=override_dir, tz=tz)
            return rendered
        if name.endswith(CARD_SUFFIX):
            # card markdown is escaped by default: data in, escaped; everything but markdown, restored
            text, compiled = self._render(name, larkmd.escape_context(dict(context)), locale, override_dir, tz)
            payload = larkmd.restore_plain(self._parse_json(name, text, compiled))
            self._raise_problems(name, compiled, "not a valid card", _card_problems(payload))
            message = RenderedMessage(msg_type="interactive", content=_compact(payload))
            limit = CARD_MAX_BYTES
        elif name.endswith(POST_SUFFIX):
            text, compiled = self._render(name, context, locale, override_dir, tz)
            payload = self._parse_json(name, text, compiled)
            self._raise_problems(name, compiled, "not a valid post", _post_problems(payload))
            message = RenderedMessage(msg_type="post", content=_compact(payload))
            limit = POST_MAX_BYTES
        else:
            # data cannot form an <at> mention or a link in a text message either
            text, compiled = self._render(name, larkmd.neutralize_text_context(dict(context)), locale, override_dir,
                                          tz)
            message = RenderedMessage(msg_type="text", content=_compact({"text": text}))
            limit = TEXT_MAX_BYTES
        size = len(json.dumps(message.content, ensure_ascii=False).encode("utf-8"))
        if size > limit:
            raise TemplateError(name, f"the {message.msg_type} message is {size:,} bytes, over Feishu's limit of "
                                      f"{limit:,} bytes: shorten the template or the data it lists",
                                locale=compiled.locale, path=compiled.path)
        return message

    def render_card_dict(self, name: str, context: Mapping[str, Any], *, locale: str,
                         override_dir: Path | None = None, tz: str = DEFAULT_TZ) -> dict[str, Any]:
        """A ``.card`` template rendered, validated and parsed, e.g. to answer a card callback."""
        if not name.endswith(CARD_SUFFIX):
            raise TemplateError(name, f"not a card template (card names end in {CARD_SUFFIX!r})")
        message = self.render_message(name, context, locale=locale, override_dir=override_dir, tz=tz)
        card: dict[str, Any] = json.loads(message.content)
        return card

    # -- checking

    def check_all(self, *, override_dir: Path | None = None) -> list[TemplateError]:
        """Render every template in every locale it exists in with its sample context; return the failures.

        With ``override_dir``, the organization's overrides are rendered instead of the plugin files they
        replace, and override files that replace no known template (a misspelt name) are reported.
        """
        errors: list[TemplateError] = []
        for name in self.names():
            try:
                sample = self.sample_context(name)
            except TemplateError as error:
                errors.append(error)
                continue
            for locale in self._locales_of(name, override_dir):
                try:
                    self.render_message(name, sample, locale=locale, override_dir=override_dir)
                except TemplateError as error:
                    errors.append(error)
        if override_dir is not None:
            errors.extend(self._stray_overrides(override_dir))
        else:
            for scenario in sorted(self._dirs):
                errors.extend(self._catalog_problems(scenario))
        return errors

    def clear_cache(self) -> None:
        """Forget compiled templates, e.g. after an organization edited its overrides."""
        self._environments.clear()
        self._cache.clear()
        self._overridden.clear()
        self._catalogs.clear()
        if self._isolated is not None:
            self._isolated.reset()

    # -- internals

    def _isolate(self, name: str, override_dir: Path | None) -> bool:
        """Whether ``name`` renders in a render process: isolation is on and its scenario has overrides."""
        if self._isolated is None or override_dir is None:
            return False
        scenario = self._split(name)[0]
        key = (override_dir, scenario)
        if key not in self._overridden:
            self._overridden[key] = (override_dir / scenario).is_dir()
        return self._overridden[key]

    @staticmethod
    def _files(folder: Path) -> set[str]:
        names = set()
        for locale in SUPPORTED_LOCALES:
            root = folder / locale
            if not root.is_dir():
                continue
            for path in root.rglob(f"*{TEMPLATE_SUFFIX}"):
                relative = path.relative_to(root)
                if path.is_file() and not any(part.startswith("_") for part in relative.parts):
                    names.add(relative.as_posix()[: -len(TEMPLATE_SUFFIX)])
        names.update(name for name in TemplateEngine._shared_files(folder) if not name.startswith("_")
                     and "/_" not in name)
        return names

    @staticmethod
    def _shared_files(folder: Path) -> list[str]:
        """Names (partials too) of the templates in ``folder`` outside the locale folders: one for every locale."""
        skip = {*SUPPORTED_LOCALES, SAMPLES_DIR, LOCALES_DIR}
        if not folder.is_dir():
            return []
        return sorted(path.relative_to(folder).as_posix()[: -len(TEMPLATE_SUFFIX)]
                      for path in folder.rglob(f"*{TEMPLATE_SUFFIX}")
                      if path.is_file() and path.relative_to(folder).parts[0] not in skip)

    def _locales_of(self, name: str, override_dir: Path | None) -> list[str]:
        scenario, short = self._split(name)
        if (self._dirs[scenario] / f"{short}{TEMPLATE_SUFFIX}").is_file():
            return list(SUPPORTED_LOCALES)
        roots = [self._dirs[scenario]] + ([override_dir / scenario] if override_dir is not None else [])
        return [locale for locale in SUPPORTED_LOCALES
                if any((root / locale / f"{short}{TEMPLATE_SUFFIX}").is_file() for root in roots)]

    def _catalog_problems(self, scenario: str) -> list[TemplateError]:
        """Every message of ``scenario``'s shared templates each locale's catalog lacks or cannot use."""
        folder = self._dirs[scenario]
        messages: dict[str | tuple[str, str], tuple[str, Path, int]] = {}  # message -> first use
        env = self._environment(None, SOURCE_LOCALE)
        errors: list[TemplateError] = []
        for short in self._shared_files(folder):
            name = f"{scenario}:{short}"
            path = folder / f"{short}{TEMPLATE_SUFFIX}"
            try:
                found = list(env.extract_translations(path.read_text(encoding="utf-8")))
            except TemplateSyntaxError as error:
                errors.append(TemplateError(name, f"{_compile_problem(error)}: {error.message}", path=path,
                                            line=error.lineno))
                continue
            for line, function, message in found:
                # Jinja gives a tuple when the call has more arguments, None for each one not a literal string
                parts = message if isinstance(message, tuple) else (message,)
                strings = [part for part in parts if isinstance(part, str)]
                key: str | tuple[str, str] | None = None
                if function == "ngettext":
                    key = (strings[0], strings[1]) if len(strings) >= 2 and parts[0] and parts[1] else None
                elif function == "pgettext":
                    ok = len(parts) >= 2 and isinstance(parts[0], str) and isinstance(parts[1], str)
                    key = context_key(str(parts[0]), str(parts[1])) if ok else None
                elif parts and isinstance(parts[0], str):
                    key = parts[0]
                if key is None:
                    errors.append(TemplateError(name, f"{function}() needs literal strings to be translated",
                                                path=path, line=line))
                    continue
                messages.setdefault(key, (name, path, line))
        if not messages:
            return errors
        for locale in SUPPORTED_LOCALES:
            if locale == SOURCE_LOCALE:
                continue
            try:
                catalog = load_catalog(folder, locale)
            except CatalogError as error:
                errors.append(TemplateError(f"{scenario}:*", str(error), locale=locale))
                continue
            path = catalog_path(folder, locale)
            for msgid, line, problem in catalog.problems:
                errors.append(TemplateError(f"{scenario}:*", f"catalog entry {msgid!r}: {problem}", locale=locale,
                                            path=path, line=line))
            unusable = {msgid for msgid, _line, _problem in catalog.problems}
            for message, (name, used_in, line) in messages.items():
                msgid = message[0] if isinstance(message, tuple) else message.rpartition("\x04")[2]
                if not catalog.has(message) and msgid not in unusable:
                    errors.append(TemplateError(name, f"no {locale} translation of {msgid!r} in {path} "
                                                      "(add it to the catalog: see 'Adding a language' in README.md)",
                                                locale=locale, path=used_in, line=line))
        return errors

    def _stray_overrides(self, override_dir: Path) -> list[TemplateError]:
        errors = []
        for path in sorted(override_dir.rglob(f"*{TEMPLATE_SUFFIX}")):
            parts = path.relative_to(override_dir).parts
            if len(parts) < 3 or parts[0] not in self._dirs or parts[1] not in SUPPORTED_LOCALES:
                errors.append(TemplateError(path.name, "override file is not at <scenario>/<locale>/<name>.j2 "
                                                       f"for a known scenario ({', '.join(sorted(self._dirs))})",
                                            path=path))
                continue
            short = "/".join(parts[2:])[: -len(TEMPLATE_SUFFIX)]
            if not any(part.startswith("_") for part in parts[2:]) and short not in self._files(self._dirs[parts[0]]):
                errors.append(TemplateError(f"{parts[0]}:{short}", "override replaces no template of the plugin "
                                                                   "(misspelt name?)", locale=parts[1], path=path))
        return errors

    def _split(self, name: str) -> tuple[str, str]:
        scenario, sep, short = name.partition(":")
        if not sep or not scenario or not short:
            raise TemplateError(name, "template names are 'scenario:name', e.g. 'device_calibration:reminder.card'")
        if short.startswith("/") or "\\" in short or ".." in short.split("/"):
            raise TemplateError(name, "template names cannot leave the template folder")
        if scenario not in self._dirs:
            known = ", ".join(sorted(self._dirs)) or "none"
            raise TemplateError(name, f"no scenario {scenario!r} has templates (known: {known})")
        return scenario, short

    def _locate(self, name: str, locale: str, override_dir: Path | None) -> _Located:
        scenario, short = self._split(name)
        filename = f"{short}{TEMPLATE_SUFFIX}"
        order = [locale, *(other for other in SUPPORTED_LOCALES if other != locale)]
        looked = []
        for candidate in order:
            # the language comes first: an org's Chinese override must not replace the plugin's English text
            roots = [override_dir / scenario] if override_dir is not None else []
            for root in [*roots, self._dirs[scenario]]:
                path = root / candidate / filename
                if path.is_file():
                    return _Located(path, candidate)
                looked.append(str(path))
            if candidate == locale:
                # a file for the locale wins; then the one template shared by all locales, in the locale's words
                path = self._dirs[scenario] / filename
                if path.is_file():
                    return _Located(path, locale)
                looked.append(str(path))
        raise TemplateError(name, f"not found in {' or '.join(order)} (looked at {', '.join(looked)})")

    def _catalog(self, template: str | None, locale: str) -> Catalog:
        """The catalog of ``template``'s scenario in ``locale`` (loaded once, until :meth:`clear_cache`)."""
        scenario = (template or "").partition(":")[0]
        if scenario not in self._dirs:
            raise CatalogError(f"template {template!r} belongs to no known scenario")
        key = (scenario, locale)
        catalog = self._catalogs.get(key)
        if catalog is None:
            catalog = load_catalog(self._dirs[scenario], locale, source=locale == SOURCE_LOCALE)
            self._catalogs[key] = catalog
        return catalog

    def _environment(self, override_dir: Path | None, locale: str) -> _Environment:
        key = (override_dir, locale)
        env = self._environments.get(key)
        if env is None:
            env = _Environment(self, loader=_Loader(self, override_dir, locale), undefined=StrictUndefined,
                               autoescape=False, trim_blocks=True, lstrip_blocks=True, auto_reload=False,
                               cache_size=-1)
            env.filters.update(self._filters)
            self._environments[key] = env
        return env

    def _compiled(self, name: str, locale: str, override_dir: Path | None) -> _Compiled:
        scenario, short = self._split(name)
        key = (override_dir, scenario, locale, short)
        compiled = self._cache.get(key)
        if compiled is not None:
            return compiled
        located = self._locate(name, locale, override_dir)
        try:
            template = self._environment(override_dir, locale).get_template(name)
        except TemplateSyntaxError as error:
            raise TemplateError(name, f"{_compile_problem(error)}: {error.message}", locale=located.locale,
                                path=Path(error.filename) if error.filename else located.path,
                                line=error.lineno) from error
        except OSError as error:
            raise TemplateError(name, f"cannot read the template: {error}", locale=located.locale,
                                path=located.path) from error
        compiled = _Compiled(template, located.locale, located.path)
        self._cache[key] = compiled
        return compiled

    def _render(self, name: str, context: Mapping[str, Any], locale: str, override_dir: Path | None,
                tz: str) -> tuple[str, _Compiled]:
        if locale not in SUPPORTED_LOCALES:
            raise TemplateError(name, f"unsupported locale {locale!r} (supported: {', '.join(SUPPORTED_LOCALES)})")
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise TemplateError(name, f"unknown timezone {tz!r}") from None
        compiled = self._compiled(name, locale, override_dir)
        token = _RENDER_STATE.set(_RenderState(compiled.locale, zone))
        try:
            return render_bounded(compiled.template, context), compiled
        except TemplateSyntaxError as error:  # in an included template, compiled at render time
            raise TemplateError(name, f"{_compile_problem(error)} in an included template: {error.message}",
                                locale=compiled.locale, path=Path(error.filename) if error.filename else None,
                                line=error.lineno) from error
        except TemplateNotFound as error:
            raise TemplateError(name, f"cannot include {error.name!r}: {error.message}", locale=compiled.locale,
                                path=compiled.path) from error
        except SecurityError as error:
            raise TemplateError(name, f"blocked by the sandbox: {error}", locale=compiled.locale,
                                path=compiled.path, line=_traceback_line(error, str(compiled.path))) from error
        except (MissingTranslation, CatalogError) as error:
            # never fall back to another language: the catalog needs the message (check_all lists them all)
            raise TemplateError(name, str(error), locale=compiled.locale, path=compiled.path,
                                line=_traceback_line(error, str(compiled.path))) from error
        except (RenderRefused, MemoryError) as error:
            raise TemplateRefused(name, f"refused by the render limits: {error or 'out of memory'}",
                                  locale=compiled.locale, path=compiled.path,
                                  line=_traceback_line(error, str(compiled.path))) from error
        except UndefinedError as error:
            raise TemplateError(name, f"undefined variable: {error}", locale=compiled.locale,
                                path=compiled.path, line=_traceback_line(error, str(compiled.path))) from error
        except Exception as error:
            # filters raise ValueError/TypeError on bad data: name the template rather than crash the send
            raise TemplateError(name, f"{type(error).__name__}: {error}", locale=compiled.locale,
                                path=compiled.path, line=_traceback_line(error, str(compiled.path))) from error
        finally:
            _RENDER_STATE.reset(token)

    @staticmethod
    def _parse_json(name: str, text: str, compiled: _Compiled) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            lines = text.splitlines() or [""]
            offending = lines[min(error.lineno, len(lines)) - 1]
            if len(offending) > 160:
                # a one-line card can be kilobytes long: show the neighbourhood of the error
                start = max(error.colno - 80, 0)
                end = start + 160
                offending = ("..." if start else "") + offending[start:end] + ("..." if end < len(offending) else "")
            offending = offending.strip()
            raise TemplateError(
                name, f"the rendered output is not valid JSON: {error.msg} at line {error.lineno} column "
                      f"{error.colno}: {offending!r} (put user data in strings with | json_str)",
                locale=compiled.locale, path=compiled.path) from None

    @staticmethod
    def _raise_problems(name: str, compiled: _Compiled, what: str, problems: list[str]) -> None:
        if problems:
            raise TemplateError(name, f"{what}: {'; '.join(problems)}", locale=compiled.locale, path=compiled.path)


def _compact(payload: Any) -> str:
    # templates are indented for people; Feishu's size limit counts every byte, so send it compact
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
