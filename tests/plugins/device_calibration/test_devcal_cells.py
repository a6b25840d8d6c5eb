"""device_calibration reads its device table with the SDK's cell codec, keeping its lenient readers."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from plugins.device_calibration.models import cell_date, cell_int, cell_person, cell_text, date_cell

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOV_24_MS = 1795449600000  # 2026-11-24 00:00 in Asia/Shanghai


def test_lookup_and_formula_cells_read_as_their_values() -> None:
    assert cell_date({"type": 5, "value": [NOV_24_MS]}, SHANGHAI) == date(2026, 11, 24)
    assert cell_int({"type": 2, "value": [12.0]}) == 12
    assert cell_person({"type": 11, "value": [{"id": "ou_1", "en_name": "Li Na"}]}).name == "Li Na"
    assert cell_text({"type": 1, "value": [{"type": "text", "text": " CT-0012 "}]}) == "CT-0012"


def test_an_odd_cell_reads_as_empty_and_dates_round_trip() -> None:
    assert cell_int("twelve") is None and cell_date("soon", SHANGHAI) is None
    assert cell_person("张伟") is None and cell_person("ou_2").open_id == "ou_2"
    assert cell_date(date_cell(date(2026, 11, 24), SHANGHAI), SHANGHAI) == date(2026, 11, 24)
