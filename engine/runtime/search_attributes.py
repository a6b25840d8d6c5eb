"""The custom search attributes scenarios set, registered on the namespace before a worker polls.

A workflow that sets a search attribute the namespace does not know fails its workflow task, again at
each retry ("search attribute ... is not defined"), so a worker makes sure of them first. Both of the
engine's servers (``temporal server start-dev`` and the time-skipping test server) and a self-hosted
cluster accept the operator service's ``AddSearchAttributes``; where it is refused (Temporal Cloud, or a
role without operator rights) the error names the command that registers them by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

# The type names of `temporal operator search-attribute create --type`, by the SDK's indexed value type.
CLI_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text", SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int", SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool", SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


class SearchAttributeError(RuntimeError):
    """The namespace lacks a search attribute a scenario sets and it could not be added, or holds one of
    the same name with another type."""


def _command(keys: Sequence[SearchAttributeKey[Any]], namespace: str) -> str:
    names = " ".join(f"--name {k.name} --type {CLI_TYPE_NAMES[k.indexed_value_type]}" for k in keys)
    return f"temporal operator search-attribute create --namespace {namespace} {names}"


async def ensure_search_attributes(client: Client, keys: Sequence[SearchAttributeKey[Any]]) -> list[str]:
    """Register the ``keys`` the client's namespace lacks; the names that were missing (empty: none).

    Raises :class:`SearchAttributeError` when one exists with another type (renaming the scenario's key is
    the fix: a namespace cannot change an attribute's type), or when the server refuses to add them.
    """
    if not keys:
        return []
    namespace = client.namespace
    try:
        system, custom = await _present(client)
    except RPCError as error:
        raise SearchAttributeError(
            f"the search attributes of namespace {namespace} could not be read ({error.message}); if this role "
            f"may not, register them with: {_command(keys, namespace)}") from error
    missing: dict[str, SearchAttributeKey[Any]] = {}
    for key in keys:
        wanted = int(key.indexed_value_type)
        if key.name in system:
            raise SearchAttributeError(f"search attribute {key.name} is one of Temporal's own: a scenario cannot "
                                       "set it; give the scenario's key another name")
        if key.name not in custom:
            missing[key.name] = key
        elif custom[key.name] != wanted:
            raise SearchAttributeError(
                f"search attribute {key.name} is a {_type_name(custom[key.name])} in namespace {namespace}, but a "
                f"scenario sets it as a {_type_name(wanted)}: give the scenario's key another name (a namespace "
                "cannot change an attribute's type)")
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={name: IndexedValueType.ValueType(int(k.indexed_value_type))
                               for name, k in missing.items()}), retry=True)
    except RPCError as error:
        _, again = await _present(client)
        if all(again.get(name) == int(k.indexed_value_type) for name, k in missing.items()):
            return sorted(missing)  # another worker, starting beside this one, added them first
        raise SearchAttributeError(
            f"namespace {namespace} lacks the search attribute(s) {', '.join(missing)} and the server refused "
            f"to add them ({error.message}); register them with: {_command(list(missing.values()), namespace)}"
        ) from error
    return sorted(missing)


async def _present(client: Client) -> tuple[dict[str, int], dict[str, int]]:
    """The namespace's system and custom search attributes by name (type as ``IndexedValueType``); empty from
    the time-skipping test server, which cannot list them but accepts any added."""
    try:
        known = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace), retry=True)
    except RPCError as error:
        if error.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        return {}, {}
    return dict(known.system_attributes), dict(known.custom_attributes)


def _type_name(value: int) -> str:
    return CLI_TYPE_NAMES.get(SearchAttributeIndexedValueType(value), IndexedValueType.Name(value))
