"""``engine send``'s helpers against a real stand-in over HTTP: editing a row, choosing the button to press."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import CliState, Fail
from engine.cli_send import _card_with, _cell, _covers, _edit_row, _org_of, _recipient
from engine.feishu.standin.app import build_app
from engine.feishu.standin.core import FeishuStandIn
from engine.feishu.standin.runner import ServerRunner

APP, TABLE = "bascnRecruiting", "tblApplications"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "engine.toml"


@pytest.fixture
def standin() -> Iterator[tuple[FeishuStandIn, str]]:
    standin = FeishuStandIn()
    standin.state.merge_json({"bitable": {APP: {TABLE: {"name": "投递", "records": [
        {"record_id": "recAppB01", "fields": {"姓名": "孙悦", "阶段": "已投递", "同意入库": True}}]}}}})
    runner = ServerRunner(build_app(standin))
    port = runner.start_in_thread("127.0.0.1", 0)
    try:
        yield standin, f"http://127.0.0.1:{port}"
    finally:
        runner.stop_thread()


def test_set_changes_the_given_cells_and_keeps_the_others(standin: tuple[FeishuStandIn, str]) -> None:
    state, url = standin
    created = state.state.table(APP, TABLE)["records"]["recAppB01"]["created_time"]
    assert _edit_row(url, APP, TABLE, "recAppB01", dict([_cell("阶段=已筛选")])) is False
    table = state.state.table(APP, TABLE)
    row = table["records"]["recAppB01"]
    assert row["fields"] == {"姓名": "孙悦", "阶段": "已筛选", "同意入库": True}
    assert row["created_time"] == created and table["name"] == "投递"


def test_set_adds_a_new_row_with_json_values_and_relative_dates(standin: tuple[FeishuStandIn, str]) -> None:
    state, url = standin
    cells = dict(_cell(item) for item in ("姓名=周婷", "人数=2", '预计入职日期={"$days_from_today": 7}'))
    assert _edit_row(url, APP, TABLE, "recAppB09", cells) is True
    fields = state.state.table(APP, TABLE)["records"]["recAppB09"]["fields"]
    assert fields["姓名"] == "周婷" and fields["人数"] == 2 and isinstance(fields["预计入职日期"], int)


def test_a_row_or_table_that_is_not_there_is_named(standin: tuple[FeishuStandIn, str]) -> None:
    _, url = standin
    with pytest.raises(Fail, match="no row recNope in bascnRecruiting tblApplications"):
        _edit_row(url, APP, TABLE, "recNope", {})
    with pytest.raises(Fail, match="no table bascnRecruiting tblNope") as refused:
        _edit_row(url, APP, "tblNope", "recAppB01", {"阶段": "面试"})
    assert "bascnRecruiting tblApplications" in str(refused.value)
    with pytest.raises(Fail, match="not FIELD=VALUE"):
        _cell("阶段")


def test_a_partial_value_names_the_button_and_an_exact_one_wins() -> None:
    approve = {"scenario": "recruiting", "op": "approve", "req": "recReqB002"}
    assert _covers(approve, {"op": "approve"}) and _covers(approve, approve)
    assert not _covers(approve, {"op": "approve", "req": "recReqA001"}) and not _covers(approve, {"op": "x"})
    assert not _covers("approve", {"op": "approve"})


def test_no_card_with_the_value_is_a_clear_error(standin: tuple[FeishuStandIn, str]) -> None:
    _, url = standin
    with pytest.raises(Fail, match="no card in the outbox has a button with this value"):
        _card_with(url, {"op": "approve"}, None)
    # with the card named, a value no button shows is pressed as given
    assert _card_with(url, {"op": "approve"}, "om_1") == ("om_1", {"op": "approve"}, None)


def test_a_press_goes_to_the_organization_its_value_belongs_to() -> None:
    state = CliState(config_path=EXAMPLE)
    assert _org_of(state, {"scenario": "recruiting", "op": "approve"}) == "rennuo"
    assert _org_of(state, {"op": "handover.submit", "key": "icu:2026-11-30T20:00"}) == "rennuo"
    assert _org_of(state, {"scenario": "device_calibration", "org": "neusoft"}) == "neusoft"
    assert _org_of(state, {"scenario": "asset_loan", "op": "borrow"}) == "neusoft"
    assert _org_of(state, {"op": "borrow"}) is None and _org_of(state, "ack") is None


def test_a_card_is_pressed_by_the_person_it_was_sent_to() -> None:
    assert _recipient({"to": "陈医生 (ou_dr_chen)"}) == "ou_dr_chen"
    assert _recipient({"to": "ou_dr_zhou"}) == "ou_dr_zhou"
    assert _recipient({"to": "oc_icu_group"}) is None and _recipient({}) is None
