"""The review page's files: safe embedded JSON, review order and evidence, stale files removed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facesieve.clean.actions import REASONS
from facesieve.devtools.review_fixture import HOSTILE_LABELS, synthetic_review
from facesieve.faces.decode import decode_image
from facesieve.faces.model_pack import bundled_photo
from facesieve.report.changes import CHANGES
from facesieve.report.html import render_index
from facesieve.report.review_data import flagged_rows, primary_reason, review_items
from facesieve.report.site import js_call, safe_json, write_site
from facesieve.report.thumbs import crop_face, face_thumb
from facesieve.storage import LocalStore


@pytest.mark.parametrize(
    "value", [*HOSTILE_LABELS, "</SCRIPT >", "<!-- x -->", "\u2028\u2029", "a&b", "é😀"]
)
def test_embedded_json_cannot_end_or_bend_a_script(value: str) -> None:
    text = safe_json({"label": value, "list": [value]})
    assert json.loads(text) == {"label": value, "list": [value]}
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert text.isascii()
    call = js_call("chunk", 3, [value]).decode("ascii")
    assert call.startswith("facesieve.chunk(3,[") and call.endswith(");\n")


def test_review_order_and_evidence(tmp_path: Path) -> None:
    ri = synthetic_review(300, tmp_path)
    recs = ri.actions.to_pylist()
    items = review_items(ri)
    rows = [it.row for it in items]
    assert rows == flagged_rows(ri.actions)
    # every row a person should look at, each once; no unflagged keep row
    assert sorted(rows) == [r for r, x in enumerate(recs) if x["action"] != "keep" or x["reasons"]]
    assert any(recs[r]["action"] == "keep" for r in rows)  # multiple_faces rows are shown
    # by the reason that chose the action, in the order of REASONS
    pos = [list(REASONS).index(primary_reason(recs[r]["reasons"])) for r in rows]
    assert pos == sorted(pos) and len(set(pos)) > 5
    ids = {x["image_id"]: r for r, x in enumerate(recs)}
    for it in items:
        rec = recs[it.row]
        groups = dict(it.evidence)
        if "near_duplicate" in rec["reasons"]:
            assert groups["kept copy"] == [ids[rec["duplicate_of"]]]
        if "mislabeled" in rec["reasons"] and rec["suggested_label"] in ri.examples:
            suggested = groups[f"label {rec['suggested_label']} (suggested)"]
            assert all(recs[r]["label"] == rec["suggested_label"] for r in suggested)


@pytest.mark.parametrize("bbox", [None, np.array([300, 120, 420, 260], np.float32)])
def test_thumbnails_of_big_jpegs_are_decoded_small_and_look_the_same(bbox: Any) -> None:
    data = bundled_photo("players.jpg").read_bytes()
    full = crop_face(decode_image(data, 10**8, len(data)).pixels, bbox)
    fast = face_thumb(data, bbox, 10**8)
    assert fast is not None and fast.size == full.size
    diff = np.abs(np.asarray(fast, np.float32) - np.asarray(full.convert("RGB"), np.float32))
    # closer to the full decode than the same crop two pixels off (sub-pixel rounding only)
    shifted = crop_face(
        decode_image(data, 10**8, len(data)).pixels, None if bbox is None else bbox + 2
    )
    off = np.abs(np.asarray(shifted.convert("RGB"), np.float32) - np.asarray(full, np.float32))
    assert diff.mean() < 15 and (bbox is None or diff.mean() < off.mean())
    assert face_thumb(data[: len(data) // 3], bbox, 10**8) is None  # truncated: none
    assert face_thumb(data, bbox, 1000) is None  # over the pixel limit
    assert face_thumb(b"not an image", bbox, 10**8) is None


def _write(out: LocalStore, n: int, root: Path) -> list[str]:
    ri = synthetic_review(n, root)
    summary = {"images": 1, "mode": "labeled", "actions": {}, "reasons": {}, "changes": {}}
    page = render_index(summary, CHANGES.empty_table(), "r1")
    return write_site(out, ri, page, {"report": "r1"}, 50, 10**8, None)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_rerun_leaves_exactly_what_a_fresh_run_writes(tmp_path: Path) -> None:
    old = LocalStore(str(tmp_path / "old"))
    # the previous layout: one index.html with inline thumbnails; and a bigger earlier report
    old.write_bytes("report/index.html", b"<html>old single page data:image/jpeg;base64,</html>")
    keys = _write(old, 400, tmp_path / "in-big")
    assert "report/data/chunk-8.js" in keys and "report/thumbs/sheet-8.jpg" in keys
    _write(old, 120, tmp_path / "in-small")
    fresh = LocalStore(str(tmp_path / "fresh"))
    keys = _write(fresh, 120, tmp_path / "in-small")
    assert "report/data/chunk-3.js" in keys and "report/data/chunk-4.js" not in keys
    got, want = _files(tmp_path / "old" / "report"), _files(tmp_path / "fresh" / "report")
    assert sorted(got) == sorted(want) == sorted(k.removeprefix("report/") for k in keys)
    assert got == want  # byte for byte, thumbnails included
