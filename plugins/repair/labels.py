"""QR labels on equipment and rooms: ``engine repair labels`` (the sheet, the CSV and the printed links are
the SDK's :mod:`engine.sdk.labels`).

Each code encodes a signed report link, ``ingress.public_url`` + ``/repair/report/{org}/{id}?name=...
[&kind=room][&site=...]&sig=...``: the signature covers the id and the values printed with it, so a label
cannot be re-pointed at another place, and the report page shows what the label says even after the
inventory changed. The items come from ``--inventory``: a JSON list of ``{"id", "name", "kind":
"equipment" | "room", "site"?}`` (``site``: a site id of the organization, whose team and rules apply).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.sdk import labels as sdk_labels

SCENARIO = "repair"
SECRET = "signing"
KINDS = ("equipment", "room")
# the report link: the item's id in the path, its printed name, its kind (rooms only) and its site signed too
LINK = sdk_labels.LinkKind(SCENARIO, "/repair/report", extra=("name", "kind", "site"))


def places(config: Any, org: Any, inventory: Path | None) -> list[sdk_labels.Item]:
    """The equipment and rooms of ``inventory``; ``ValueError`` saying what is wrong, and where."""
    if inventory is None:
        raise ValueError('repair labels need --inventory: a JSON list of {"id", "name", "kind", "site"?}')
    try:
        rows = sdk_labels.seed_records(inventory, "", "")
    except json.JSONDecodeError as error:
        raise ValueError(f"{inventory}: not JSON ({error})") from None
    found: list[sdk_labels.Item] = []
    for number, row in enumerate(rows, start=1):
        item_id, name = str(row.get("id") or "").strip(), str(row.get("name") or "").strip()
        kind, site = str(row.get("kind") or "equipment"), str(row.get("site") or "")
        if not item_id or not name:
            raise ValueError(f"{inventory}: entry {number} needs an \"id\" and a \"name\"")
        if kind not in KINDS:
            raise ValueError(f"{inventory}: entry {number} ({item_id}): kind is equipment or room, not {kind!r}")
        if site and site not in org.site_ids:
            raise ValueError(f"{inventory}: entry {number} ({item_id}): no site {site!r} in organization {org.id}")
        # equipment is the default kind, left out of the link to keep the code small
        found.append((item_id, name, {"name": name, "kind": "room" if kind == "room" else "", "site": site}))
    return found


def register_labels(group: Any) -> None:
    """``engine repair labels --org X --inventory FILE.json [--item ID ...] --out FILE.pdf|FILE.svg``."""
    sdk_labels.labels_command(group, scenario=SCENARIO, link=LINK, items=places, noun="item", title="repair labels",
                              inventory_help='The equipment and rooms: a JSON list of {"id", "name", "kind", '
                                             '"site"?}.', secret=SECRET)
