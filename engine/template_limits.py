"""Limits on rendering templates: an organization's override cannot burn the CPU or memory others share.

Override templates (an organization's ``templates_dir``) are written by that organization, not by the
plugin's authors, and render in processes every organization shares. Three limits apply:

* In every render (:class:`LimitedSandbox`, :func:`render_bounded`): ``*`` may not build a string or
  list longer than :data:`MAX_SEQUENCE` items, ``**`` may not build an integer over :data:`MAX_POWER_BITS`
  bits, and the output stops at :data:`MAX_OUTPUT_CHARS` characters. Jinja's sandbox already caps
  ``range()`` at 100,000 items (``jinja2.sandbox.MAX_RANGE``); its ``call_binop`` hook is documented at
  https://jinja.palletsprojects.com/en/stable/sandbox/#operator-intercepting.
* Override renders run in a separate process (:class:`IsolatedRenderer`) with a hard deadline
  (:data:`RENDER_SECONDS`; the process is killed and replaced when it passes) and a memory cap
  (:data:`MEMORY_BYTES`, ``RLIMIT_AS``): nested loops or a huge ``center()`` stop there, whatever the
  template does.
* Renders for sending run off the event loop (:func:`render_message_off_loop`), in a thread that waits
  for that process, so the ingress and the worker keep serving while one renders.

A refused override is logged with the template's name and the organization, and the message is sent
with the plugin's shipped template instead (the reminder or handover still reaches people; the
organization loses only its wording for that message). ``engine dev``, ``engine worker`` and ``engine
ingress`` also refuse to start while an override fails its sample render, limits included.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import multiprocessing
import pickle
import queue
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2.sandbox import SandboxedEnvironment

if TYPE_CHECKING:
    from jinja2 import Template

    from engine.templates import RenderedMessage, TemplateEngine

log = logging.getLogger(__name__)

MAX_SEQUENCE = 100_000
"""Items (characters of a string) a ``*`` may produce: ``'─' * 20`` passes, ``'a' * 200000000`` does not."""
MAX_POWER_BITS = 4096
MAX_OUTPUT_CHARS = 512 * 1024
"""Characters a render may produce: well above Feishu's largest message (text, 150 KB)."""
RENDER_SECONDS = 3.0
"""Wall time an override render may take in its process (a legitimate one takes milliseconds)."""
MEMORY_BYTES = 1024 * 1024 * 1024
"""Address space of a render process (``RLIMIT_AS``)."""
PROCESSES = 2
START_SECONDS = 60.0  # a fresh render process imports the engine and the plugins' filters


class RenderRefused(Exception):
    """A render went past a limit (size of a value or of the output, time, memory)."""


class LimitedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with ``*`` and ``**`` bounded; mix in before the sandboxed environment used."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int) \
                        and len(sequence) * times > MAX_SEQUENCE:
                    raise RenderRefused(f"'*' would build {len(sequence) * times:,} items "
                                        f"(at most {MAX_SEQUENCE:,})")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                and right * math.log2(abs(left)) > MAX_POWER_BITS:
            raise RenderRefused(f"'**' would build a number of over {MAX_POWER_BITS:,} bits")
        return super().call_binop(context, operator, left, right)


def render_bounded(template: Template, context: Mapping[str, Any], limit: int = MAX_OUTPUT_CHARS) -> str:
    """``template.render(context)``, stopped with :class:`RenderRefused` once the output passes ``limit``."""
    parts: list[str] = []
    size = 0
    chunks: Iterator[str] = template.generate(dict(context))
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise RenderRefused(f"the output passed {limit:,} characters")
        parts.append(chunk)
    return "".join(parts)


# ------------------------------------------------------------------------------ the render processes


def _child(connection: Connection, template_dirs: dict[str, Path], filters: dict[str, Callable[..., Any]],
           memory_bytes: int) -> None:
    """A render process: answers ``(method, args, kwargs)`` requests until its pipe closes."""
    import resource

    from engine.templates import TemplateEngine, TemplateError

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    engine = TemplateEngine(template_dirs, filters)
    connection.send(("ready", None))
    while True:
        try:
            method, args, kwargs = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", getattr(engine, method)(*args, **kwargs))
        except TemplateError as error:
            answer = ("error", (type(error).__name__, error.template, error.cause, error.locale, error.path,
                                error.line))
        except MemoryError:
            answer = ("error", ("TemplateRefused", args[0] if args else "?", "the render ran out of memory",
                                None, None, None))
        try:
            connection.send(answer)
        except (pickle.PicklingError, TypeError) as error:
            connection.send(("error", ("TemplateError", args[0] if args else "?",
                                       f"the result cannot be returned: {error}", None, None, None)))


def _unavailable_filter(name: str, *args: Any, **kwargs: Any) -> Any:
    raise ValueError(f"the filter {name!r} cannot be used in an organization's override template: "
                     "its plugin must define it as a module-level function")


class _Process:
    """One render process, started on first use and replaced after it is killed."""

    def __init__(self, owner: IsolatedRenderer) -> None:
        self.owner = owner
        self.process: Any = None
        self.connection: Connection | None = None
        self.generation = owner.generation

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        parent, child = context.Pipe()
        process = context.Process(target=_child, daemon=True, name="engine-template-render",
                                  args=(child, self.owner.template_dirs, self.owner.filters,
                                        self.owner.memory_bytes))
        process.start()
        child.close()
        if not parent.poll(START_SECONDS):
            process.kill()
            process.join()
            raise RuntimeError("the template render process did not start")
        parent.recv()
        self.process, self.connection = process, parent

    def call(self, request: tuple[str, tuple[Any, ...], dict[str, Any]], seconds: float) -> tuple[str, Any]:
        if self.process is None or not self.process.is_alive() or self.generation != self.owner.generation:
            self.stop()  # dead, killed, or holding templates compiled before clear_cache()
            self.generation = self.owner.generation
            self._start()
        assert self.connection is not None
        self.connection.send(request)
        if not self.connection.poll(seconds):
            self.stop()
            raise RenderRefused(f"the render took longer than {seconds:g} s")
        try:
            answer: tuple[str, Any] = self.connection.recv()
        except (EOFError, OSError):
            self.stop()
            raise RenderRefused("the render process died (memory limit?)") from None
        return answer

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
        if self.connection is not None:
            self.connection.close()
        self.process = self.connection = None


class IsolatedRenderer:
    """Renders through :class:`~engine.templates.TemplateEngine` methods in separate processes, with a deadline.

    ``template_dirs`` and ``filters`` build the processes' own template engines. A filter must be
    picklable (a module-level function) to reach them; any other is replaced there by one that fails
    with a message saying so. Calls block their thread (run them off the event loop); while
    every process is busy, a call waits for one, and only its own render counts against ``seconds``.
    """

    def __init__(self, template_dirs: Mapping[str, Path], filters: Mapping[str, Callable[..., Any]], *,
                 seconds: float = RENDER_SECONDS, processes: int = PROCESSES,
                 memory_bytes: int = MEMORY_BYTES) -> None:
        self.template_dirs = dict(template_dirs)
        self.filters: dict[str, Callable[..., Any]] = {}
        for name, function in filters.items():
            try:
                pickle.dumps(function)
                self.filters[name] = function
            except Exception:  # a lambda or a local function cannot reach another process: an override using
                # it fails with the stub's message (at start-up, in the override check)
                self.filters[name] = functools.partial(_unavailable_filter, name)
        self.seconds = seconds
        self.memory_bytes = memory_bytes
        self.generation = 0
        self._idle: queue.Queue[_Process] = queue.Queue()
        self._all = [_Process(self) for _ in range(processes)]
        for process in self._all:
            self._idle.put(process)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``TemplateEngine.<method>(*args, **kwargs)`` in a render process; its TemplateError re-raised here."""
        from engine import templates

        process = self._idle.get()
        try:
            status, value = process.call((method, args, kwargs), self.seconds)
        except RenderRefused as error:
            raise templates.TemplateRefused(str(args[0]) if args else "?", str(error)) from None
        finally:
            self._idle.put(process)
        if status == "ok":
            return value
        kind, template, cause, locale, path, line = value
        error_type = templates.TemplateRefused if kind == "TemplateRefused" else templates.TemplateError
        raise error_type(template, cause, locale=locale, path=path, line=line)

    def reset(self) -> None:
        """Make every process start afresh before its next render (its compiled templates are stale)."""
        self.generation += 1

    def close(self) -> None:
        for process in self._all:
            process.stop()


# ------------------------------------------------------------------------------------ sending a message


async def render_message_off_loop(templates: TemplateEngine, name: str, context: Mapping[str, Any], *,
                                  locale: str, override_dir: Path | None, tz: str, org_id: str) -> RenderedMessage:
    """Render for sending, in a thread; an override refused by the limits falls back to the shipped template.

    Raises :class:`~engine.templates.TemplateError` when the template cannot render otherwise.
    """
    from engine.templates import TemplateRefused

    try:
        return await asyncio.to_thread(templates.render_message, name, context, locale=locale,
                                       override_dir=override_dir, tz=tz)
    except TemplateRefused as error:
        if override_dir is None:
            raise
        log.warning("override template %s of organization %s refused (%s); sending the plugin's own template",
                    name, org_id, error.cause)
        return await asyncio.to_thread(templates.render_message, name, context, locale=locale,
                                       override_dir=None, tz=tz)
