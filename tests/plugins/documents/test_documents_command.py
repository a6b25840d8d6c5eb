"""`engine documents send`: the options checked with a fix named, a round sent and its cards out, a second
send of the same id refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from documents_helpers import A_RESP, HQ, config

import plugins.documents as documents
from engine.sdk import Fail, Services
from engine.sdk.feishu import open_client
from engine.testing import moments
from engine.testing.kit import TASK_QUEUE, org_config
from plugins.documents.commands import round_input, send_round


def parsed(document: dict[str, Any]) -> Any:
    from engine.config import parse_config
    from engine.plugins import load_plugins

    plugin_set = load_plugins(modules={"documents": documents}, entry_points=False)
    return parse_config(document, Path("engine.toml"), plugin_set.scenarios)


@pytest.mark.parametrize(("change", "message", "hint"), [
    ({"org_id": "nope"}, "no organization 'nope'", "known: acme"),
    ({"round_id": "2612"}, "--id '2612' is not a round id", "DOC-"),
    ({"deadline": "15/12/2026"}, "--deadline '15/12/2026' is not a date", "YYYY-MM-DD"),
    ({"sites": ("仁诺Z院",)}, "no site 仁诺Z院", "hosp_a"),
    ({"title": " "}, "--title is empty", "the hospitals"),
])
def test_wrong_options_name_the_option_and_the_fix(change: dict[str, Any], message: str, hint: str) -> None:
    options = {"org_id": "acme", "round_id": "DOC-1212", "kind": "read", "title": "T", "deadline": "2026-12-15",
               **change}
    with pytest.raises(Fail) as failed:
        round_input(parsed(config()), **options)
    first, _, rest = failed.value.message.partition("\n")
    assert message in first and hint in rest  # one line of error, then the hint


def test_an_organization_without_the_plugin_is_told_to_enable_it() -> None:
    with pytest.raises(Fail, match="does not enable the documents plugin"):
        round_input(parsed(org_config(plugins=[])), "acme", "DOC-1212", "read", "T", "2026-12-15")


async def test_a_round_is_sent_and_a_second_send_of_its_id_is_refused(scenario_harness: Any) -> None:
    async with scenario_harness({"documents": documents}, config=config()) as env:
        start = await env.begin_at(moments.ordinary_workday())
        deadline = (start.date() + timedelta(days=7)).isoformat()
        wanted = round_input(env.config, env.org.id, "doc-cli-1", "upload", "月报", deadline, sites=("仁诺A院",),
                             sender=HQ)
        assert wanted.round_id == "DOC-CLI-1" and wanted.sites == ["仁诺A院"]
        async with open_client(env.config) as feishu:  # the command's services, on the test's server
            services = Services(config=env.config, feishu=feishu, temporal=env.client, task_queue=TASK_QUEUE)
            sent = await send_round(services, env.org.id, wanted)
            with pytest.raises(Fail, match="was sent already"):
                await send_round(services, env.org.id, wanted)
        assert sent is not None and [h.site for h in sent.hospitals] == ["hosp_a"] and sent.hospitals[0].cards
        await env.settle()  # the command returns once the hospitals' cards are out; headquarters' follows
        assert len(env.messages(to=A_RESP)) == 1 and len(env.messages(to=HQ)) == 1
