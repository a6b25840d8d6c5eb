"""The file a running `engine dev` leaves for the commands beside it: read by development configs only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.runtime import devsession


def _config(tmp_path: Path, *, production: bool = False) -> SimpleNamespace:
    return SimpleNamespace(feishu=object() if production else None, state_dir=lambda: tmp_path)


def _session(pid: int) -> devsession.DevSession:
    return devsession.DevSession(pid=pid, config="engine.toml", temporal_address="127.0.0.1:7355",
                                 ingress_url="http://127.0.0.1:8765", state_dir="/srv/dev",
                                 feishu_env={"FEISHU_APP_ID": "cli_standin", "FEISHU_APP_SECRET": "dev-secret",
                                             "FEISHU_BASE_URL": "http://127.0.0.1:9155"})


def test_a_development_config_adopts_the_running_dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("FEISHU_APP_ID", "FEISHU_APP_SECRET", "FEISHU_BASE_URL"):
        monkeypatch.setenv(key, "")  # so that monkeypatch restores what adopt() sets
        monkeypatch.delenv(key)
    path = devsession.write(tmp_path, _session(os.getpid()))
    assert path.stat().st_mode & 0o777 == 0o600
    found = devsession.adopt(_config(tmp_path))
    assert found is not None and found.temporal_address == "127.0.0.1:7355"
    assert os.environ["FEISHU_BASE_URL"] == "http://127.0.0.1:9155"


def test_a_production_config_never_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEISHU_APP_ID", "")
    monkeypatch.delenv("FEISHU_APP_ID")
    devsession.write(tmp_path, _session(os.getpid()))
    assert devsession.adopt(_config(tmp_path, production=True)) is None
    assert "FEISHU_APP_ID" not in os.environ


def test_a_dead_devs_file_is_ignored_and_only_its_owner_removes_it(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    devsession.write(tmp_path, _session(int(finished.stdout)))
    assert devsession.read(tmp_path) is not None and devsession.running(_config(tmp_path)) is None
    devsession.remove(tmp_path)  # not this process's file: left alone
    assert (tmp_path / devsession.SESSION_FILE).exists()
    devsession.remove(tmp_path, pid=int(finished.stdout))
    assert not (tmp_path / devsession.SESSION_FILE).exists()
    (tmp_path / devsession.SESSION_FILE).write_text("{not json", encoding="utf-8")
    assert devsession.read(tmp_path) is None
