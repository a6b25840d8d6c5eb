"""Run a test suite as if now were one of the year's hard moments: month and year ends, Spring Festival, ...

```sh
python -m engine.testing.hard_moments --list                 # the moments and what each one is
python -m engine.testing.hard_moments year-end               # one moment, the default tests
python -m engine.testing.hard_moments --all                  # every moment in turn
python -m engine.testing.hard_moments --rotate               # the moment of today's rotation (CI)
python -m engine.testing.hard_moments year-end -- tests/plugins/my_plugin -x   # your own pytest arguments
```

The time-skipping test server starts at the real current time, so a scenario test meets month ends, Spring
Festival or a daylight-saving change only on the days the suite happens to run then. This command moves the
clock of the whole process tree, pytest and every server it starts, with libfaketime (``LD_PRELOAD``): the
run begins at the moment and the clock then ticks normally.

The offset is relative (``FAKETIME="+N"`` seconds), computed once at start, so every process started later
sees the same moved clock rather than restarting at the moment. Two measured facts decide the monotonic clock:

- Python keeps its monotonic clock real (``FAKETIME_DONT_FAKE_MONOTONIC=1``): it sleeps and waits on locks
  until an *absolute* monotonic deadline, which a moved monotonic clock puts weeks ahead (``time.sleep`` in
  ``subprocess.run(timeout=...)`` hung);
- the Temporal test server gets its monotonic clock moved by the same constant, through a wrapper named by
  ``ENGINE_TEST_SERVER``: with only its wall clock moved it spun at full CPU (a plugin test file took 271 s
  instead of 36 s).

The ``temporal`` dev server is a Go program, which reads the clock without the C library, so libfaketime
does not move it: end-to-end tests run their Python processes at the moment and that server at real time.

The library comes from the ``libfaketime`` package of the test extra (it ships ``libfaketime.so.1``);
``FAKETIME_LIB`` names another build, e.g. Debian's ``/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1``.
Linux only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

# the scenarios, the examples, the end-to-end runs, and the engine's approvals (their reminders, escalations
# and monthly card run on working days too)
DEFAULT_TESTS = ("tests/plugins", "tests/examples", "tests/e2e", "tests/engine/test_approvals.py",
                 "tests/engine/test_approval_report.py")


@dataclass(frozen=True)
class HardMoment:
    """A wall-clock moment (``local`` in ``zone``) that a scenario suite must pass at."""

    name: str
    local: datetime  # naive: wall-clock time in ``zone``
    zone: str
    why: str

    @property
    def instant(self) -> datetime:
        return self.local.replace(tzinfo=ZoneInfo(self.zone)).astimezone(UTC)


SHANGHAI = "Asia/Shanghai"

#: The set the suite must pass at. Dates of Chinese holidays and make-up working days are the State
#: Council's (the ``chinese_calendar`` data for 2026; Spring Festival 2027 falls on 6 February).
MOMENTS: tuple[HardMoment, ...] = (
    HardMoment("month-end", datetime(2027, 3, 31, 23, 59), SHANGHAI,
               "the last minute of a month in Shanghai (a workday; April begins with a weekend)"),
    HardMoment("year-end", datetime(2026, 12, 31, 23, 59), SHANGHAI,
               "the last minute of the year in Shanghai, on the eve of the New Year holiday"),
    HardMoment("spring-festival-eve", datetime(2027, 2, 5, 15, 50), SHANGHAI,
               "the afternoon of Spring Festival's eve 2027 (除夕), a year the official calendar may not cover"),
    HardMoment("makeup-saturday", datetime(2026, 10, 10, 8, 55), SHANGHAI,
               "a make-up working Saturday (调休) after the National Day holiday 2026"),
    HardMoment("leap-day", datetime(2028, 2, 29, 8, 55), SHANGHAI,
               "29 February 2028, a working Tuesday"),
    HardMoment("dst-berlin", datetime(2027, 3, 28, 1, 55), "Europe/Berlin",
               "five minutes before Europe/Berlin springs forward (02:00 CET becomes 03:00 CEST)"),
)


def moment(name: str) -> HardMoment:
    for candidate in MOMENTS:
        if candidate.name == name:
            return candidate
    raise SystemExit(f"unknown moment {name!r}; the moments are: {', '.join(m.name for m in MOMENTS)}")


def rotation(today: date) -> HardMoment:
    """The moment CI runs on ``today``: each in turn, one a day (by the day of the year)."""
    return MOMENTS[today.toordinal() % len(MOMENTS)]


def faketime_library() -> str:
    """The path of ``libfaketime.so.1``: ``FAKETIME_LIB``, else the one the ``libfaketime`` package ships."""
    configured = os.environ.get("FAKETIME_LIB")
    if configured:
        return configured
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or not spec.origin:
        raise SystemExit("libfaketime is not installed: pip install -e '.[test]' (or set FAKETIME_LIB)")
    path = Path(spec.origin).parent / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not path.exists():
        raise SystemExit(f"libfaketime ships no {path.name} for this platform: set FAKETIME_LIB to one")
    return str(path)


def test_server_wrapper(folder: Path) -> Path:
    """A script in ``folder`` that runs the Temporal test server with its monotonic clock moved too."""
    from engine.testing.kit import find_test_server

    script = folder / "temporal-test-server"
    script.write_text(f'#!/bin/sh\nFAKETIME_DONT_FAKE_MONOTONIC=0 exec "{find_test_server()}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return script


def faked_environment(at: HardMoment, base: dict[str, str] | None = None, *,
                      scratch: Path | None = None) -> dict[str, str]:
    """The environment that starts a process tree's clock at ``at`` (and lets it tick from there).

    With ``scratch`` (a folder), the Temporal test server runs through :func:`test_server_wrapper`.
    """
    env = dict(os.environ if base is None else base)
    offset = round(at.instant.timestamp() - time.time())
    preload = faketime_library()
    env["LD_PRELOAD"] = f"{preload}:{env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else preload
    env["FAKETIME"] = f"{offset:+d}"
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    if scratch is not None:
        env["ENGINE_TEST_SERVER"] = str(test_server_wrapper(scratch))
    return env


def run(at: HardMoment, pytest_args: list[str]) -> int:
    """Run pytest under the moved clock; returns its exit code."""
    print(f"== {at.name}: {at.local:%Y-%m-%d %H:%M} {at.zone} ({at.why})", flush=True)
    command = [sys.executable, "-m", "pytest", *pytest_args]
    with tempfile.TemporaryDirectory(prefix="hard-moment-") as scratch:
        return subprocess.call(command, env=faked_environment(at, scratch=Path(scratch)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.testing.hard_moments",
                                     description="Run tests as if now were a hard moment of the year.")
    parser.add_argument("moments", nargs="*", help="moment names (see --list)")
    parser.add_argument("--all", action="store_true", help="every moment, one after another")
    parser.add_argument("--rotate", action="store_true", help="the moment of today's rotation (one a day)")
    parser.add_argument("--list", action="store_true", help="list the moments and exit")
    parser.epilog = "pytest arguments follow --; without them: -q " + " ".join(DEFAULT_TESTS)
    argv = sys.argv[1:] if argv is None else argv
    ours, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser.parse_args(ours)
    if args.list:
        for m in MOMENTS:
            print(f"{m.name:21} {m.local:%Y-%m-%d %H:%M} {m.zone:14} {m.why}")
        return 0
    chosen = list(MOMENTS) if args.all else [moment(name) for name in args.moments]
    if args.rotate:
        chosen.append(rotation(datetime.now(UTC).date()))
    if not chosen:
        parser.error("name a moment, or give --all, --rotate or --list")
    pytest_args = rest or ["-q", *DEFAULT_TESTS]
    results = {m.name: run(m, pytest_args) for m in chosen}
    if len(results) > 1:
        print("== results: " + ", ".join(f"{name} {'passed' if code == 0 else f'FAILED ({code})'}"
                                          for name, code in results.items()))
    return next((code for code in results.values() if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
