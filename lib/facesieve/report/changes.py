"""``OUT/report/changes.parquet``: what changed since the previous report.

The report keeps ``report/state.parquet``, a snapshot of what it was made from (each image's uri,
label, size, SHA-256, action and reasons). The next report compares itself with it:

- ``added``: a file that was not there; ``removed``: a file that is gone;
- ``modified``: the same path with other bytes (or another label, for a tar member);
- ``verdict``: an unchanged file whose action or reasons changed (a new near duplicate arrived,
  its label's identity moved, a threshold changed).

The snapshot is written last, after every other report file, and records the digest of the
inputs it was made from: a report killed half-way is redone against the same snapshot, and a
report that finished all but its done-marker is recognised as finished.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

STATE_KEY = "report/state.parquet"
CHANGES_KEY = "report/changes.parquet"
CHANGE_KINDS = ("added", "removed", "modified", "verdict")
STATE_COLUMNS = ["image_id", "uri", "label", "bytes", "sha256", "action", "reasons"]

CHANGES = pa.schema(
    [
        pa.field("change", pa.string(), nullable=False),  # added | removed | modified | verdict
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("old_action", pa.string()),
        pa.field("new_action", pa.string()),
        pa.field("old_reasons", pa.list_(pa.string())),
        pa.field("new_reasons", pa.list_(pa.string())),
    ]
)


def state_table(images: pa.Table, actions: pa.Table) -> pa.Table:
    """The snapshot of this report: images and their actions, aligned by image id."""
    at = pc.index_in(images.column("image_id"), value_set=actions.column("image_id"))
    return pa.table(
        {
            "image_id": images.column("image_id"),
            "uri": images.column("uri"),
            "label": images.column("label"),
            "bytes": images.column("bytes"),
            "sha256": images.column("sha256"),
            "action": actions.column("action").take(at),
            "reasons": actions.column("reasons").take(at),
        }
    )


def compare(previous: pa.Table | None, current: pa.Table) -> pa.Table:
    """The change rows between two snapshots, sorted by change kind then uri."""
    old = {r["image_id"]: r for r in previous.to_pylist()} if previous is not None else {}
    rows: list[dict[str, Any]] = []
    seen = set()
    for new in current.to_pylist():
        seen.add(new["image_id"])
        before = old.get(new["image_id"])
        if before is None:
            kind = "added"
        elif (before["bytes"], before["sha256"], before["label"]) != (
            new["bytes"],
            new["sha256"],
            new["label"],
        ):
            kind = "modified"
        elif (before["action"], before["reasons"]) != (new["action"], new["reasons"]):
            kind = "verdict"
        else:
            continue
        rows.append(_row(kind, new, before))
    rows += [_row("removed", r, r, gone=True) for i, r in old.items() if i not in seen]
    rows.sort(key=lambda r: (CHANGE_KINDS.index(r["change"]), r["uri"]))
    return pa.Table.from_pylist(rows, schema=CHANGES)


def _row(kind: str, new: dict[str, Any], old: dict[str, Any] | None, gone: bool = False) -> dict:
    return {
        "change": kind,
        "image_id": new["image_id"],
        "uri": new["uri"],
        "label": new["label"],
        "old_action": old["action"] if old is not None and kind != "added" else None,
        "new_action": None if gone else new["action"],
        "old_reasons": old["reasons"] if old is not None and kind != "added" else None,
        "new_reasons": None if gone else new["reasons"],
    }


def counts(changes: pa.Table) -> dict[str, int]:
    found = Counter(changes.column("change").to_pylist())
    return {kind: found.get(kind, 0) for kind in CHANGE_KINDS}
