"""A worker registers the search attributes its scenarios set before it polls, on a real dev server."""

from __future__ import annotations

import uuid

import pytest
from temporalio.common import SearchAttributeKey

from engine.runtime.search_attributes import SearchAttributeError, ensure_search_attributes
from engine.runtime.server import EmbeddedTemporal
from engine.runtime.worker import connect


async def test_missing_attributes_are_added_once_and_a_clash_of_types_is_refused(
        dev_server: EmbeddedTemporal) -> None:
    client = await connect(dev_server.address, "default")
    name = f"ProbeAt{uuid.uuid4().hex[:6]}"
    stamp, count = SearchAttributeKey.for_datetime(name), SearchAttributeKey.for_int(f"{name}Count")

    assert await ensure_search_attributes(client, [stamp, count]) == sorted([name, f"{name}Count"])
    assert await ensure_search_attributes(client, [stamp, count]) == []  # already there: nothing to do
    assert await ensure_search_attributes(client, []) == []

    with pytest.raises(SearchAttributeError, match=f"{name} is a Datetime .* as a Keyword: give"):
        await ensure_search_attributes(client, [SearchAttributeKey.for_keyword(name)])
    with pytest.raises(SearchAttributeError, match="StartTime is one of Temporal's own"):
        await ensure_search_attributes(client, [SearchAttributeKey.for_keyword("StartTime")])
