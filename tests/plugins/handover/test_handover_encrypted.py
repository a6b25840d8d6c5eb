"""A handover with the payload codec on: its patient details never reach Temporal's history in plain text."""

from __future__ import annotations

import pytest
from handover_helpers import card, handover_settings
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from test_handover_flow import at, start_shift

import plugins.handover as handover
from engine.codec import EncryptionCodec, new_key_text
from plugins.handover import models as m

NAME, SUMMARY = "张三", "重症肺炎，呼吸机辅助通气"


async def test_patient_details_are_encrypted_in_the_history(scenario_harness) -> None:
    codec = EncryptionCodec.from_text(new_key_text("k1"))
    async with scenario_harness({"handover": handover}, org_settings={"handover": handover_settings()},
                                payload_codec=codec) as env:
        plan = await start_shift(env, "20:00")
        await at(env, plan.form_at)
        await env.deliver(card(plan.giver, "handover.entry", plan.key, {
            "bed": "12", "name": NAME, "category": "critically_ill", "severity": "unstable",
            "summary": SUMMARY}, event_id="ev-entry-1"))
        # through the codec, the workflow holds and answers what was saved
        entries = [m.PatientEntry.model_validate(x) for x in await env.handle("handover", plan.key).query("entries")]
        assert [(e.bed, e.name, e.fields.get("summary")) for e in entries] == [("12", NAME, SUMMARY)]
        assert any(NAME in (message.text or "") for message in env.messages(to=plan.giver))  # cards still show it

        # what Temporal stores: ciphertext only (the update's input, activity inputs, the card's context)
        history = await env.handle("handover", plan.key).fetch_history()
        stored = b"".join(event.SerializeToString() for event in history.events)
        assert b"binary/encrypted" in stored
        assert NAME.encode() not in stored and SUMMARY.encode() not in stored and b"\\u5f20" not in stored
        # a client without the codec cannot read the workflow's answers
        plain = Client(**{**env.client.config(), "data_converter": pydantic_data_converter})
        with pytest.raises(Exception, match="binary/encrypted"):
            await plain.get_workflow_handle(history.workflow_id).query("entries")
