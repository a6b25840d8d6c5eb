"""Shared settings and helpers of the handover plugin tests."""

from __future__ import annotations

from typing import Any

from engine.sdk import CardAction
from engine.testing import events

HEAD = "ou_head_icu"
DAY = "ou_dr_day"  # works the day shift on workdays
NIGHT = "ou_dr_night"
HOLIDAY = "ou_dr_holiday"  # covers days off
OFFICE = "ou_medical_affairs"
GROUP = "oc_icu_group"
RECORDS = {"app_token": "bascnHandover", "table_id": "tblHandovers"}
PATIENTS = {"app_token": "bascnPatients", "table_id": "tblPatientEntries"}



def handover_settings(**overrides: Any) -> dict[str, Any]:
    """An ICU with a workday rota, a holiday rota, a group chat and both Bitable tables."""
    settings: dict[str, Any] = {
        "departments": {"icu": {
            "name": "ICU", "head": HEAD, "group_chat": GROUP,
            "workday_rota": {"08:00": {"giver": NIGHT, "receiver": DAY}, "20:00": {"giver": DAY, "receiver": NIGHT}},
            "holiday_rota": {"08:00": {"giver": NIGHT, "receiver": HOLIDAY},
                             "20:00": {"giver": HOLIDAY, "receiver": NIGHT}},
        }},
        "handovers_table": RECORDS, "patients_table": PATIENTS, "medical_affairs": [OFFICE],
    }
    settings.update(overrides)
    return settings


def card(operator: str, op: str, key: str, form: dict[str, Any] | None = None, event_id: str | None = None,
         **value: Any) -> CardAction:
    """A card press as the ingress would normalize it."""
    return events.card_press({"op": op, "key": key, **value}, operator, form=form, event_id=event_id)
