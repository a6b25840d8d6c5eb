"""Workflow IDs are business keys, namespaced by organization and scenario."""

from __future__ import annotations

SEPARATOR = ":"


def workflow_id(org: str, scenario: str, key: str) -> str:
    """The ID of the one workflow that holds ``key`` for ``scenario`` in ``org``."""
    for part, label in ((org, "organization id"), (scenario, "scenario name")):
        if not part or SEPARATOR in part:
            raise ValueError(f"{label} {part!r} must be non-empty and contain no {SEPARATOR!r}")
    if not key:
        raise ValueError("a workflow key must be non-empty")
    return f"{org}{SEPARATOR}{scenario}{SEPARATOR}{key}"


def split_workflow_id(value: str) -> tuple[str, str, str]:
    """Split ``{org}:{scenario}:{key}``; the key itself may contain ':'."""
    parts = value.split(SEPARATOR, 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{value!r} is not an engine workflow id ({{org}}:{{scenario}}:{{key}})")
    return parts[0], parts[1], parts[2]
