"""Headless Chromium for tests that look at a page as a browser renders it (Debian's ``chromium`` package).

Two calls, each one run of ``chromium --headless``: :func:`dump_dom` returns the document after the page
loaded (redirects followed, cookies kept within the run, scripts run), :func:`screenshot` writes a PNG of
the window. A test calls :func:`require_chromium` first, which skips it with the install command when
the browser is not there (``.ci/run`` installs it on a Debian machine where it can).

Chromium refuses to run as root with its sandbox on, so as root it runs with ``--no-sandbox``; the pages
are the tests' own, on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "apt-get install -y chromium fonts-noto-cjk fonts-noto-color-emoji"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser's path: ``$CHROMIUM`` if set, else the first of :data:`CANDIDATES` on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else shutil.which(explicit)
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def require_chromium() -> str:
    """The browser's path, or skip the calling test saying how to install it."""
    import pytest

    path = find_chromium()
    if path is None:
        pytest.skip(f"headless Chromium is not installed (Debian: `{INSTALL_HINT}`)")
    return path


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    browser = find_chromium()
    if browser is None:
        raise RuntimeError(f"headless Chromium is not installed (Debian: `{INSTALL_HINT}`)")
    sandbox = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    # chromium's helper processes may still write to the profile as the main one exits: a leftover file
    # in a temporary directory is no failure of the page under test
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        command = [browser, "--headless", *sandbox, "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                   "--hide-scrollbars", "--disable-extensions", "--lang=zh-CN", f"--user-data-dir={profile}",
                   *args]
        # the browser keeps the real clock: under a hard moment's libfaketime it hangs at start
        env = {key: value for key, value in os.environ.items()
               if key != "LD_PRELOAD" and not key.startswith("FAKETIME")}
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr[-2000:]}")
    return done


def dump_dom(url: str, *, width: int = 1000, height: int = 1400, timeout: float = 90) -> str:
    """The page's DOM, serialized by the browser after it loaded ``url``."""
    return _run([f"--window-size={width},{height}", "--dump-dom", url], timeout=timeout).stdout


def screenshot(url: str, path: Path, *, width: int = 1000, height: int = 1400, timeout: float = 90) -> Path:
    """A PNG of the browser window (``width`` x ``height`` CSS pixels) showing ``url``, written to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--window-size={width},{height}", f"--screenshot={path.resolve()}", url], timeout=timeout)
    if not path.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path


# ------------------------------------------------------------------------------ reading a dumped DOM
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
                  "wbr"})


class Element:
    """One element of a parsed document: ``tag``, ``attrs``, ``classes``, children, and its ``text``."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.classes = set(attrs.get("class", "").split())
        self.children: list[Element | str] = []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def iter(self) -> list[Element]:
        """This element and every element inside it, in document order."""
        out = [self]
        for child in self.children:
            if isinstance(child, Element):
                out.extend(child.iter())
        return out

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        """Elements inside (and including) this one with ``tag`` and/or class ``cls``."""
        return [e for e in self.iter() if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)]

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.iter() if e.attrs.get("id") == element_id]
        if not found:
            raise KeyError(f"no element with id {element_id!r}")
        return found[0]


def parse_dom(document: str) -> Element:
    """``document`` (what :func:`dump_dom` returns) as a tree of :class:`Element` under a root ``#document``."""
    from html.parser import HTMLParser

    root = Element("#document", {}, None)

    class Builder(HTMLParser):
        current = root

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
            self.current.children.append(element)
            if tag not in VOID:
                self.current = element

        def handle_endtag(self, tag: str) -> None:
            node: Element | None = self.current
            while node is not None and node.tag != tag:
                node = node.parent
            if node is not None and node.parent is not None:
                self.current = node.parent

        def handle_data(self, data: str) -> None:
            self.current.children.append(data)

    builder = Builder(convert_charrefs=True)
    builder.feed(document)
    builder.close()
    return root
