"""Every "Try it" of README.md and the plugins' READMEs runs as pasted against `engine dev`.

The example config is copied, and dev started from the copy on free ports; each ``sh`` block of a
"Try it" section is then run line by line from the repository's root, as a reader would paste it
(only the stand-in's documented port is swapped for the one this run got).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runtime.server import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ENGINE = Path(sys.executable).parent / "engine"
DOCUMENTED_STANDIN = "127.0.0.1:9100"
READMES = [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]
TRY_HEADING = re.compile(r"^(#{2,4}) (?:Try it|Trying it)\b.*$", re.M)


def try_it_blocks(readme: Path) -> list[str]:
    """The ``sh`` blocks of ``readme``'s "Try it" sections, in order."""
    text = readme.read_text(encoding="utf-8")
    blocks: list[str] = []
    for heading in TRY_HEADING.finditer(text):
        level = len(heading.group(1))
        rest = text[heading.end():]
        end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
        blocks += re.findall(r"```sh\n(.*?)```", rest[:end.start()] if end else rest, re.S)
    return blocks


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`engine dev` on a copy of the example config; the environment a reader's shell would have."""
    workdir = tmp_path_factory.mktemp("try-it")
    shutil.copytree(ROOT / "examples", workdir / "examples", ignore=shutil.ignore_patterns(".state"))
    config = workdir / "examples" / "engine.toml"
    ports = {"ingress": free_port(), "temporal": free_port(), "standin": free_port()}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FEISHU_", "ENGINE_"))}
    env.update({"ENGINE_CONFIG": str(config), "PATH": f"{ENGINE.parent}{os.pathsep}{env.get('PATH', '')}"})
    process = subprocess.Popen(
        [str(ENGINE), "dev", "--port", str(ports["ingress"]), "--temporal-port", str(ports["temporal"]),
         "--standin-port", str(ports["standin"])],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    for line in process.stdout:
        output.append(line)
        if "engine dev is running" in line or time.monotonic() > deadline:
            break
    if "engine dev is running" not in "".join(output):
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("engine dev did not start:\n" + "".join(output))
    try:
        yield {**env, "_STANDIN": f"127.0.0.1:{ports['standin']}"}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("readme", [r for r in READMES if try_it_blocks(r)], ids=lambda p: p.parent.name)
def test_try_it_runs_as_pasted(dev: dict[str, str], readme: Path) -> None:
    env = {key: value for key, value in dev.items() if not key.startswith("_")}
    engine = ".venv/bin/engine"
    for block in try_it_blocks(readme):
        script = block.replace(DOCUMENTED_STANDIN, dev["_STANDIN"])
        if not (ROOT / engine).exists():  # a suite run from another virtual environment
            script = script.replace(engine, str(ENGINE))
        done = subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        shown = f"{readme.relative_to(ROOT)}:\n{block}\n{done.stdout}{done.stderr}"
        assert done.returncode == 0, shown
        assert "Error" not in done.stdout + done.stderr and "Traceback" not in done.stderr, shown
        if " send " in script:
            assert "→ " in done.stdout or "toast: " in done.stdout, shown  # the bot answered


def test_every_plugin_readme_has_a_try_it() -> None:
    without = [r.parent.name for r in READMES[1:] if not try_it_blocks(r)]
    assert without == [], without
