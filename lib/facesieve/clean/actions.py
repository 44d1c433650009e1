"""The contract's action list: one row per input image, with what to do and why.

Action precedence when an image has several reasons: drop > relabel > review > keep. ``score``
belongs to the reason that chose the action (pixel correlation for near duplicates, cosine with
the suggested identity for mislabeled, cosine with its own identity for outliers, centroid
cosine for the two label-level reasons).
"""

from __future__ import annotations

import pyarrow as pa

DROP, RELABEL, REVIEW, KEEP = "drop", "relabel", "review", "keep"
SEVERITY = {DROP: 3, RELABEL: 2, REVIEW: 1, KEEP: 0}

# reason -> action it asks for (order: the order reasons are listed in a row)
REASONS = {
    "decode_error": DROP,
    "no_face": DROP,
    "exact_duplicate": DROP,
    "near_duplicate": DROP,
    "low_quality": DROP,
    "mislabeled": RELABEL,
    "outlier": REVIEW,
    "label_has_multiple_identities": REVIEW,
    "identity_split_across_labels": REVIEW,
    "duplicate_across_labels": REVIEW,
    "multiple_faces": KEEP,
}

ACTIONS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
        pa.field("suggested_label", pa.string()),
        pa.field("duplicate_of", pa.string()),
        pa.field("cluster_id", pa.int64()),
        pa.field("score", pa.float32()),
    ]
)


class ActionBuilder:
    """Collects reasons per image row, then resolves each row's action."""

    def __init__(self, n: int) -> None:
        self.reasons: list[list[str]] = [[] for _ in range(n)]
        self.scores: list[dict[str, float]] = [{} for _ in range(n)]
        self.suggested: list[str | None] = [None] * n
        self.duplicate_of: list[str | None] = [None] * n

    def add(
        self,
        row: int,
        reason: str,
        score: float | None = None,
        suggested: str | None = None,
        duplicate_of: str | None = None,
    ) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        if reason not in self.reasons[row]:
            self.reasons[row].append(reason)
        if score is not None:
            self.scores[row][reason] = float(score)
        if suggested is not None and self.suggested[row] is None:
            self.suggested[row] = suggested
        if duplicate_of is not None:
            self.duplicate_of[row] = duplicate_of

    def action(self, row: int) -> tuple[str, float | None]:
        reasons = sorted(self.reasons[row], key=list(REASONS).index)
        self.reasons[row] = reasons
        if not reasons:
            return KEEP, None
        top = max(reasons, key=lambda r: (SEVERITY[REASONS[r]], -list(REASONS).index(r)))
        action = REASONS[top]
        score = self.scores[row].get(top)
        if score is None:  # the chosen reason has none: take any scored reason of that action
            score = next(
                (
                    self.scores[row][r]
                    for r in reasons
                    if REASONS[r] == action and r in self.scores[row]
                ),
                None,
            )
        return action, score

    def table(self, images: pa.Table, cluster_ids: list[int | None]) -> pa.Table:
        resolved = [self.action(r) for r in range(images.num_rows)]
        return pa.table(
            {
                "image_id": images.column("image_id"),
                "uri": images.column("uri"),
                "label": images.column("label"),
                "action": [a for a, _ in resolved],
                "reasons": self.reasons,
                "suggested_label": self.suggested,
                "duplicate_of": self.duplicate_of,
                "cluster_id": cluster_ids,
                "score": [None if s is None else round(s, 4) for _, s in resolved],
            },
            schema=ACTIONS,
        )
