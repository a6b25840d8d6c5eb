"""The Bitable cell codec: every value shape Feishu sends, read into typed values and written back.

Shapes follow Feishu's "多维表格记录数据结构" (bitable-record-data-structure-overview) and what the Open API
returned for the plugins' tables; each test names the field type it covers.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from engine.sdk import cells

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOV_24_MS = 1795449600000  # 2026-11-24 00:00 in Asia/Shanghai (2026-11-23 16:00 UTC)


def test_text_from_rich_text_segments_plain_strings_and_numbers() -> None:
    segments = [{"type": "text", "text": "示波器 "}, {"type": "mention", "text": "@李娜", "token": "ou_1"},
                {"type": "url", "text": " 手册", "link": "https://example.com"}]
    assert cells.text(segments) == "示波器 @李娜 手册"
    assert cells.text("  RD-OSC-001 ") == "RD-OSC-001"
    assert cells.text(12) == "12" and cells.text(2.5) == "2.5"
    assert cells.text(None) == "" and cells.text([]) == "" and cells.text("") == ""


def test_text_of_lists_joins_entries() -> None:
    assert cells.text(["红", "蓝"]) == "红, 蓝"  # multi select
    assert cells.text([{"id": "ou_1", "name": "李娜"}, {"id": "ou_2", "name": "王伟"}]) == "李娜, 王伟"  # persons
    assert cells.text({"link": "https://a.example", "text": "主页"}) == "主页"  # URL
    assert cells.text({"type": 1, "value": [{"type": "text", "text": "✅ 正常"}]}) == "✅ 正常"  # formula


def test_number_from_number_currency_and_formula_cells() -> None:
    assert cells.number(3) == 3 and isinstance(cells.number(3), int)
    assert cells.number(99.5) == 99.5
    assert cells.number({"type": 2, "value": [42]}) == 42  # lookup of a number
    assert cells.number("1,280") == 1280  # a formula giving text
    assert cells.number(None) is None and cells.number([]) is None
    with pytest.raises(cells.CellError, match="cannot be read as a number"):
        cells.number("abc")
    with pytest.raises(cells.CellError):
        cells.number(True)


def test_single_and_multi_select() -> None:
    assert cells.option("借出") == "借出"
    assert cells.options("借出") == ["借出"]
    assert cells.options(["A", "B", "A", ""]) == ["A", "B"]
    assert cells.option(["A", "B"]) == "A"
    assert cells.options({"type": 4, "value": [["A"], ["B", "C"]]}) == ["A", "B", "C"]  # lookup of multi select
    assert cells.option(None) is None and cells.options(None) == []


def test_date_in_the_zone_it_was_entered() -> None:
    assert cells.date(NOV_24_MS, SHANGHAI) == date(2026, 11, 24)
    assert cells.date(NOV_24_MS, "UTC") == date(2026, 11, 23)
    assert cells.date("2026-11-24", "UTC") == date(2026, 11, 24)  # a text column holding an ISO day
    assert cells.date(None, SHANGHAI) is None and cells.date("", SHANGHAI) is None


def test_lookup_and_formula_date_wrappers() -> None:
    # a lookup of a date column (the "应还日期" case) and a formula giving a date
    assert cells.date({"type": 5, "value": [NOV_24_MS]}, SHANGHAI) == date(2026, 11, 24)
    assert cells.date({"type": 5, "value": []}, SHANGHAI) is None
    assert cells.moment({"type": 5, "value": [NOV_24_MS]}) == datetime(2026, 11, 23, 16, tzinfo=UTC)


def test_moment_from_created_and_modified_time_and_iso_text() -> None:
    assert cells.moment(NOV_24_MS) == datetime(2026, 11, 23, 16, tzinfo=UTC)  # created time (1001)
    assert cells.moment(str(NOV_24_MS)) == datetime(2026, 11, 23, 16, tzinfo=UTC)
    assert cells.moment("2026-11-24T09:30:00+08:00") == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    assert cells.moment("2026-11-24 09:30") == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    with pytest.raises(cells.CellError, match="as a date"):
        cells.moment("next Tuesday")


def test_checkbox() -> None:
    assert cells.checkbox(True) is True and cells.checkbox(False) is False
    assert cells.checkbox(None) is False
    assert cells.checkbox({"type": 7, "value": [True]}) is True  # lookup of a checkbox
    assert cells.checkbox("是") is True
    with pytest.raises(cells.CellError):
        cells.checkbox("perhaps")


def test_persons_from_person_created_by_and_text_cells() -> None:
    value = [{"id": "ou_1", "name": "李娜", "en_name": "Li Na", "email": "lina@example.com",
              "avatar_url": "https://x"}, {"open_id": "ou_2", "name": "王伟"}]
    assert cells.persons(value) == [
        cells.Person(id="ou_1", name="李娜", en_name="Li Na", email="lina@example.com"),
        cells.Person(id="ou_2", name="王伟")]
    assert cells.person({"id": "ou_3", "name": "赵"}) == cells.Person(id="ou_3", name="赵")  # created by: one object
    assert cells.persons({"type": 11, "value": [{"id": "ou_4", "name": "陈"}]})[0].id == "ou_4"  # lookup
    assert cells.persons("ou_5, ou_6") == [cells.Person(id="ou_5"), cells.Person(id="ou_6")]  # text column
    assert cells.person(None) is None and cells.persons([]) == []
    with pytest.raises(cells.CellError, match="as a person"):
        cells.persons("张三")


def test_phone_and_url() -> None:
    assert cells.phone("13800000000") == "13800000000"
    assert cells.url({"link": "https://a.example/x", "text": "说明书"}) == cells.Url(link="https://a.example/x",
                                                                                   text="说明书")
    assert cells.url("https://b.example") == cells.Url(link="https://b.example", text="https://b.example")
    assert cells.url(None) is None


def test_attachments() -> None:
    value = [{"file_token": "boxcnA", "name": "证书.pdf", "size": 1024, "type": "application/pdf",
              "url": "https://open.feishu.cn/x", "tmp_url": "https://t"}]
    assert cells.attachments(value) == [cells.Attachment(file_token="boxcnA", name="证书.pdf", size=1024,
                                                         type="application/pdf", url="https://open.feishu.cn/x")]
    assert cells.attachments(None) == []
    with pytest.raises(cells.CellError):
        cells.attachments(["证书.pdf"])


def test_links_in_every_shape() -> None:
    assert cells.links({"link_record_ids": ["recA", "recB"]}) == ["recA", "recB"]
    assert cells.links([{"record_ids": ["recA"], "table_id": "tbl1", "text": "A", "type": "text"}]) == ["recA"]
    assert cells.links(["recA", "recB"]) == ["recA", "recB"]
    assert cells.links(None) == []


def test_location_and_auto_number() -> None:
    value = {"location": "116.397755,39.903179", "pname": "北京市", "cityname": "北京市", "adname": "东城区",
             "address": "东长安街", "name": "天安门", "full_address": "北京市东城区东长安街天安门"}
    found = cells.location(value)
    assert found is not None and (found.longitude, found.latitude) == (116.397755, 39.903179)
    assert (found.name, found.district, found.full_address) == ("天安门", "东城区", "北京市东城区东长安街天安门")
    assert cells.text(value) == "天安门"
    assert cells.text("NO.012") == "NO.012" and cells.number("12") == 12  # auto number


def test_errors_name_the_shape_not_the_content() -> None:
    with pytest.raises(cells.CellError) as caught:
        cells.persons([{"name": "患者 张三", "phone": "13800000000"}])
    assert "13800000000" not in str(caught.value) and "张三" not in str(caught.value)
    assert "{name, phone}" in str(caught.value)


def test_encode_values_for_writes_and_read_them_back() -> None:
    assert cells.encode_date(date(2026, 11, 24), SHANGHAI) == NOV_24_MS
    assert cells.date(cells.encode_date(date(2026, 11, 24), SHANGHAI), SHANGHAI) == date(2026, 11, 24)
    moment = datetime(2026, 11, 24, 1, 30, tzinfo=UTC)
    assert cells.moment(cells.encode_moment(moment)) == moment
    assert cells.encode_persons(["ou_1", cells.Person(id="ou_2", name="王")]) == [{"id": "ou_1"}, {"id": "ou_2"}]
    assert cells.encode_persons([]) == []
    assert cells.encode_options("借出") == "借出" and cells.encode_options(("A", "B")) == ["A", "B"]
    assert cells.encode_links(["recA"]) == ["recA"]
    assert cells.encode_url("https://a.example") == {"link": "https://a.example", "text": "https://a.example"}
    with pytest.raises(TypeError):
        cells.encode_date(moment, SHANGHAI)
    with pytest.raises(ValueError, match="aware"):
        cells.encode_moment(datetime(2026, 11, 24))


def test_or_none_reads_an_odd_cell_as_empty_and_logs_where_not_what(caplog: pytest.LogCaptureFixture) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    assert cells.or_none(cells.date, {"type": 5, "value": [1795449600000]}, zone) == date(2026, 11, 24)
    with caplog.at_level(logging.WARNING, logger="engine.sdk.cells"):
        assert cells.or_none(cells.date, "张三 13800138000", zone, where="column '应还日期'") is None
    assert "column '应还日期'" in caplog.text and "13800138000" not in caplog.text and "张三" not in caplog.text
