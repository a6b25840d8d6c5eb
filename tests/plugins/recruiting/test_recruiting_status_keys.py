"""Which words recruiting takes as the key of a status question (``status_key_pattern``'s default)."""

from __future__ import annotations

from engine.sdk import status_question
from plugins.recruiting.config import RecruitingSettings


def test_status_keys_are_recruitings_own_ids_only() -> None:
    """Its ids (record ids, Hire and pool ids, a form-opened requisition's ``R`` + 10 hex digits) are keys;
    another scenario's id that starts with R ("RD-OSC-001", an asset; "RL-0001", a device) is not, so
    "@bot RD-OSC-001 状态" is answered by the asset's scenario alone, not also with "no such requisition"."""
    pattern = RecruitingSettings().status_key_pattern
    for own in ("recAppA01", "recReqA002", "hire_6964", "pool_c1_recReqA002", "R5e3702a84e"):
        question = status_question(f"{own} 状态", pattern)
        assert question is not None and question.key == own and question.locale == "zh_CN"
    for other in ("RD-OSC-001", "RL-0001", "RA-0000", "R5e3702a84"):
        assert status_question(f"{other} 状态", pattern) is None
