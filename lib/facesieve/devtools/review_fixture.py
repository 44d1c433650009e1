"""A synthetic review of any size, for the review-page test and benchmark.

The actions are made up (a reason mix like a real crawl's: mostly duplicates and low quality),
the pictures are real: tiles of the photos bundled with the model pack, one hard link per image,
so every row has its own file and thumbnails cost what real small photos cost. A few rows carry
hostile labels and file names (markup, ``</script>``, ``<!--``, U+2028) that the page must show
as text.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from facesieve.clean.actions import ACTIONS, KEEP, REASONS
from facesieve.faces.model_pack import bundled_photo
from facesieve.report.changes import CHANGES
from facesieve.report.html import render_index
from facesieve.report.review_data import EXAMPLES, ReviewInputs
from facesieve.schema import stable_id

TILE = 250  # an LFW-sized picture
MIX = {
    "near_duplicate": 40,
    "exact_duplicate": 10,
    "low_quality": 15,
    "no_face": 5,
    "decode_error": 2,
    "mislabeled": 10,
    "outlier": 8,
    "duplicate_across_labels": 3,
    "label_has_multiple_identities": 3,
    "identity_split_across_labels": 2,
    "multiple_faces": 2,
}
HOSTILE_LABELS = [
    "</script><script>window.__pwned=1</script>",
    "<!--<img src=x onerror=window.__pwned=2>",
    "line\u2028sep\u2029<b>bold</b>&amp;",
]
HOSTILE_NAMES = ["<img src=x onerror=window.__pwned=3>.jpg", "a\u2028<!--b-->&c.jpg"]


def _tiles(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ("players.jpg", "gdp.jpg", "yaoming.jpg"):
        img = Image.open(bundled_photo(name)).convert("RGB")
        for y in range(0, img.height - TILE + 1, TILE):
            for x in range(0, img.width - TILE + 1, TILE):
                path = folder / f"{Path(name).stem}-{x}-{y}.jpg"
                buf = io.BytesIO()
                img.crop((x, y, x + TILE, y + TILE)).save(buf, "JPEG", quality=85)
                path.write_bytes(buf.getvalue())
                paths.append(path)
    return paths


def synthetic_review(n_flagged: int, root: Path, seed: int = 0) -> ReviewInputs:
    """``n_flagged`` flagged rows plus a fifth as many kept ones, with files under ``root``."""
    rng = np.random.default_rng(seed)
    tiles = _tiles(root / "tiles")
    n_keep = max(n_flagged // 5, 20)
    n = n_flagged + n_keep
    n_labels = max(10, n // 20)
    labels = [f"person_{i:05d}" for i in range(n_labels)] + HOSTILE_LABELS
    names = list(MIX)
    weights = np.array([MIX[r] for r in names], np.float64)
    primary = rng.choice(len(names), n_flagged, p=weights / weights.sum())
    lab = rng.integers(0, len(labels), n)
    lab[n_keep : n_keep + len(HOSTILE_LABELS)] = np.arange(len(HOSTILE_LABELS)) + n_labels
    files = root / "files"
    uris, reasons, suggested, dup_of, scores, actions = [], [], [], [], [], []
    errors: list[str | None] = []
    keep_of_label: dict[int, list[int]] = {}
    for r in range(n):
        folder = files / f"l{lab[r]}"
        folder.mkdir(parents=True, exist_ok=True)
        hostile = r - n_keep - 3
        name = HOSTILE_NAMES[hostile] if 0 <= hostile < len(HOSTILE_NAMES) else f"{r}.jpg"
        path = folder / name
        if not path.exists():
            os.link(tiles[r % len(tiles)], path)
        uris.append(str(path))
    ids = [stable_id(u) for u in uris]
    for r in range(n_keep):
        keep_of_label.setdefault(int(lab[r]), []).append(r)
        reasons.append([])
        suggested.append(None)
        dup_of.append(None)
        scores.append(None)
        actions.append(KEEP)
        errors.append(None)
    copies: dict[int, list[int]] = {}
    for i in range(n_flagged):
        r = n_keep + i
        reason = names[primary[i]]
        rs = [reason]
        kept = int(rng.integers(0, n_keep))
        other = labels[int(rng.integers(0, n_labels))]
        reasons.append(rs)
        relabel = reason in ("mislabeled", "identity_split_across_labels")
        suggested.append(other if relabel else None)
        dup_of.append(ids[kept] if reason in ("near_duplicate", "exact_duplicate") else None)
        scores.append(None if reason in ("no_face", "decode_error") else float(rng.uniform(0, 1)))
        errors.append("cannot decode: truncated <file>" if reason == "decode_error" else None)
        actions.append(REASONS[reason])
        if reason == "duplicate_across_labels":
            copies[r] = copies[kept] = sorted({r, kept, *copies.get(kept, [])})
    table = pa.table(
        {
            "image_id": ids,
            "uri": uris,
            "label": [labels[i] for i in lab],
            "action": actions,
            "reasons": reasons,
            "suggested_label": suggested,
            "duplicate_of": dup_of,
            "cluster_id": pa.nulls(n, pa.int64()),
            "score": scores,
        },
        schema=ACTIONS,
    )
    boxes = np.full((n, 4), np.nan, np.float32)
    boxes[::2] = [40, 40, 200, 210]
    examples = {labels[c]: rows[: EXAMPLES + 1] for c, rows in keep_of_label.items()}
    rs = [{} if s is None or not r else {r[0]: s} for r, s in zip(reasons, scores, strict=True)]
    return ReviewInputs(table, errors, boxes, examples, copies, rs)


def synthetic_page(ri: ReviewInputs, out_root: Path, report: str) -> tuple[str, dict[str, str]]:
    """The ``index.html`` text and the data header ``write_site`` takes for a synthetic review
    written under ``out_root``, as the report step would make them (no changes since a last
    run, empty totals)."""
    summary = {
        "images": ri.actions.num_rows,
        "mode": "labeled",
        "actions": {},
        "reasons": {},
        "changes": {},
        "output": str(out_root),
    }
    page = render_index(summary, CHANGES.empty_table(), report)
    return page, {"report": report, "output": str(out_root)}
