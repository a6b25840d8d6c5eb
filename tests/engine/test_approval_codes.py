"""The approval definitions a config asks for: what `engine dev` subscribes the app to at start."""

from __future__ import annotations

from pathlib import Path

from engine.approval_codes import configured_approval_codes
from engine.cli import CliState

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "engine.toml"


def test_the_example_names_its_hospitals_definition_once() -> None:
    config = CliState(config_path=EXAMPLE).config()
    # A院 overrides the group's (empty) code; B院 and the group keep card buttons
    assert configured_approval_codes(config) == ["4C5A1B2E-7D3F-4E8A-9B61-2F0C8D7E5A13"]
    rennuo = config.orgs["rennuo"]
    assert rennuo.settings("recruiting", "hosp_b").approval.feishu.approval_code == ""
