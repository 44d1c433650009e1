"""What the review page shows: the flagged images in review order, their evidence, their pages.

The page lists every image a person may want to look at: each row of ``actions.parquet`` whose
action is not ``keep``, plus ``keep`` rows that carry a reason (``multiple_faces``: the subject
chosen among several faces may be the wrong one). Items are ordered by the reason that chose
their action (the order of ``REASONS``), then strongest score first, then uri, and cut into pages
of ``clean.report_rows`` items. A page is also the unit of the files on disk (one data chunk, one
sprite sheet), so the unfiltered page *k* costs one script and one image.

The model is built from plain columns (``ReviewInputs``), not from the rules' internals, so tests
and the benchmark can render a page of any size from a synthetic action table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from facesieve.clean.actions import KEEP, REASONS, SEVERITY
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.rules import Decision

EXAMPLES = 3  # faces shown for a label's identity
ORDER = {r: i for i, r in enumerate(REASONS)}


@dataclass
class ReviewInputs:
    """Per image row: its action row, read error, subject face box and the evidence pools."""

    actions: pa.Table  # ACTIONS schema, one row per input image
    errors: list[str | None]
    boxes: np.ndarray  # (I, 4) float32 box of the face shown; NaN row = whole picture
    examples: dict[str, list[int]] = field(default_factory=dict)  # label -> rows of its identity
    copies: dict[int, list[int]] = field(default_factory=dict)  # row -> its cross-label group
    reason_scores: list[dict[str, float]] = field(default_factory=list)


def review_inputs(inp: CleanInputs, decision: Decision) -> ReviewInputs:
    """The review inputs of a real report."""
    n = inp.n_images
    face_boxes = np.asarray(inp.faces.column("bbox").combine_chunks().flatten(), np.float32)
    face_boxes = face_boxes.reshape(-1, 4)
    boxes = np.full((n, 4), np.nan, np.float32)
    has = decision.subject >= 0
    boxes[has] = face_boxes[decision.subject[has]]
    examples: dict[str, list[int]] = defaultdict(list)
    if decision.identities is not None and len(inp.face_image):
        for f in np.flatnonzero(decision.identities.member):
            img = int(inp.face_image[f])
            code = int(decision.image_label[img])
            if code < 0:
                continue
            rows = examples[decision.label_names[code]]
            if len(rows) < EXAMPLES + 1 and img not in rows:
                rows.append(img)
    groups: dict[int, list[int]] = defaultdict(list)
    for row, keep in sorted(decision.duplicates.across_labels.items()):
        groups[keep].append(row)
    copies = {}
    for keep, rows in groups.items():
        group = sorted({keep, *rows})
        for r in group:
            copies[r] = group
    return ReviewInputs(
        decision.actions,
        inp.images.column("error").to_pylist(),
        boxes,
        dict(examples),
        copies,
        decision.reason_scores,
    )


@dataclass
class Item:
    """One flagged image: its row, and the evidence shown beside it as (title, rows)."""

    row: int
    evidence: list[tuple[str, list[int]]]


def primary_reason(reasons: list[str]) -> str:
    """The reason that chose the action (the same precedence as ``ActionBuilder.action``)."""
    return max(reasons, key=lambda r: (SEVERITY[REASONS[r]], -ORDER[r]))


def flagged_rows(actions: pa.Table) -> list[int]:
    """Rows to review, in review order."""
    acts = actions.column("action").to_pylist()
    reasons = actions.column("reasons").to_pylist()
    scores = actions.column("score").to_pylist()
    uris = actions.column("uri").to_pylist()
    rows = [r for r in range(len(acts)) if acts[r] != KEEP or reasons[r]]
    return sorted(
        rows,
        key=lambda r: (ORDER[primary_reason(reasons[r])], -(scores[r] or 0.0), uris[r]),
    )


def evidence(
    ri: ReviewInputs, row: int, rec: dict, row_of: dict[str, int], labels: list[str | None]
) -> list[tuple[str, list[int]]]:
    """Evidence groups for every reason of one image, each group once."""
    label, suggested = rec["label"], rec["suggested_label"]
    own = [r for r in ri.examples.get(label, []) if r != row][:EXAMPLES] if label else []
    groups: dict[str, list[int]] = {}
    for reason in rec["reasons"]:
        if reason in ("exact_duplicate", "near_duplicate") and rec["duplicate_of"] in row_of:
            groups["kept copy"] = [row_of[rec["duplicate_of"]]]
        elif reason == "duplicate_across_labels":
            for r in ri.copies.get(row, []):
                if r != row:
                    groups[f"label {labels[r]}"] = [r]
        elif reason in ("mislabeled", "identity_split_across_labels"):
            if own:
                groups[f"label {label}"] = own
            other = [r for r in ri.examples.get(suggested, []) if r != row][:EXAMPLES]
            if suggested and other:
                groups[f"label {suggested} (suggested)"] = other
        elif reason in ("outlier", "label_has_multiple_identities") and own:
            groups[f"label {label}"] = own
    return list(groups.items())


def review_items(ri: ReviewInputs) -> list[Item]:
    """Every flagged image with its evidence, in review order."""
    ids = ri.actions.column("image_id").to_pylist()
    row_of = {i: r for r, i in enumerate(ids)}
    flagged = flagged_rows(ri.actions)
    recs = ri.actions.select(["label", "suggested_label", "duplicate_of", "reasons"]).to_pylist()
    labels = ri.actions.column("label").to_pylist()
    return [Item(r, evidence(ri, r, recs[r], row_of, labels)) for r in flagged]


def pages(items: list[Item], per_page: int) -> list[list[Item]]:
    """The items cut into pages (one data chunk and one sprite sheet each)."""
    per_page = max(per_page, 1)
    return [items[i : i + per_page] for i in range(0, len(items), per_page)]
