from __future__ import annotations

import pyarrow as pa
import pytest

from facesieve.clean.actions import ACTIONS, ActionBuilder


def _images(n: int) -> pa.Table:
    return pa.table(
        {
            "image_id": [f"i{k}" for k in range(n)],
            "uri": [f"/d/{k}.jpg" for k in range(n)],
            "label": ["a"] * n,
        }
    )


def test_most_severe_reason_sets_the_action_and_score() -> None:
    b = ActionBuilder(3)
    b.add(0, "mislabeled", 0.7, suggested="b")
    b.add(0, "near_duplicate", 0.95, duplicate_of="i2")
    b.add(1, "mislabeled", 0.6, suggested="c")
    b.add(1, "multiple_faces")
    t = b.table(_images(3), [1, None, 4]).to_pylist()
    assert t[0]["action"] == "drop" and t[0]["score"] == pytest.approx(0.95)
    assert t[0]["reasons"] == ["near_duplicate", "mislabeled"]
    assert t[0]["suggested_label"] == "b"  # kept as evidence, though the image is dropped
    assert t[1]["action"] == "relabel" and t[1]["suggested_label"] == "c"
    assert t[2]["action"] == "keep" and t[2]["reasons"] == []
    assert b.table(_images(3), [None] * 3).schema == ACTIONS


def test_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown reason"):
        ActionBuilder(1).add(0, "blurry")
