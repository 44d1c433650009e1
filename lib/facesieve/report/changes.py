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

import pyarrow as pa
import pyarrow.compute as pc

STATE_KEY = "report/state.parquet"
CHANGES_KEY = "report/changes.parquet"
CHANGE_KINDS = ("added", "removed", "modified", "verdict")
STATE_COLUMNS = ["image_id", "uri", "label", "bytes", "sha256", "action", "reasons"]

REASONS = pa.list_(pa.string())
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
    """The change rows between two snapshots, sorted by change kind then uri (vectorised: a
    million rows take a few seconds)."""
    if previous is None:
        previous = current.schema.empty_table()
    at = pc.fill_null(pc.index_in(current["image_id"], value_set=previous["image_id"]), -1)
    known = pc.greater_equal(at, 0)
    before = previous.take(pc.if_else(known, at, 0)) if previous.num_rows else current
    same_file = pc.and_(
        pc.and_(
            _same(before["bytes"], current["bytes"]), _same(before["sha256"], current["sha256"])
        ),
        _same(before["label"], current["label"]),
    )
    same_verdict = pc.and_(
        _same(before["action"], current["action"]),
        _same(_joined(before["reasons"]), _joined(current["reasons"])),
    )
    kind = pc.if_else(
        pc.invert(known),
        "added",
        pc.if_else(pc.invert(same_file), "modified",
                   pc.if_else(pc.invert(same_verdict), "verdict", None)),
    )  # fmt: skip
    keep = pc.is_valid(kind)
    now = current.filter(keep)
    old = before.filter(keep)
    added = pc.equal(kind.filter(keep), "added")
    rows = pa.table(
        {
            "change": kind.filter(keep),
            "image_id": now["image_id"],
            "uri": now["uri"],
            "label": now["label"],
            "old_action": pc.if_else(added, pa.scalar(None, pa.string()), old["action"]),
            "new_action": now["action"],
            "old_reasons": pc.if_else(added, pa.scalar(None, REASONS), old["reasons"]),
            "new_reasons": now["reasons"],
        }
    )
    gone = previous.filter(pc.invert(pc.is_in(previous["image_id"], value_set=current["image_id"])))
    removed = pa.table(
        {
            "change": pa.array(["removed"] * gone.num_rows, pa.string()),
            "image_id": gone["image_id"],
            "uri": gone["uri"],
            "label": gone["label"],
            "old_action": gone["action"],
            "new_action": pa.nulls(gone.num_rows, pa.string()),
            "old_reasons": gone["reasons"],
            "new_reasons": pa.nulls(gone.num_rows, REASONS),
        }
    )
    table = pa.concat_tables([rows.cast(CHANGES), removed.cast(CHANGES)])
    order = pc.index_in(table["change"], value_set=pa.array(CHANGE_KINDS))
    table = table.append_column("_order", order)
    return table.sort_by([("_order", "ascending"), ("uri", "ascending")]).drop_columns(["_order"])


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    """Element-wise equality where two nulls are equal."""
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(both_null, pc.fill_null(pc.equal(a, b), False))


def _joined(reasons: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.binary_join(reasons, "|")


def counts(changes: pa.Table) -> dict[str, int]:
    found = Counter(changes.column("change").to_pylist())
    return {kind: found.get(kind, 0) for kind in CHANGE_KINDS}
