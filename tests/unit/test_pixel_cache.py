"""Keys and round trip of the near-duplicate pixel-score cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesieve.clean import pixel_cache
from facesieve.clean.pixel_cache import face_key, load_scores, scores_bytes
from facesieve.storage import LocalStore


def test_face_key_depends_on_bytes_and_landmarks_only() -> None:
    lm = np.arange(10, dtype=np.float32)
    assert face_key("ab" * 32, lm) == face_key("ab" * 32, lm.astype(np.float64))
    assert face_key("ab" * 32, lm) != face_key("cd" * 32, lm)
    moved = lm.copy()
    moved[3] += 0.5
    assert face_key("ab" * 32, lm) != face_key("ab" * 32, moved)
    # a whole-photo frame (no landmarks) is its own key
    assert face_key("ab" * 32, None) not in (face_key("ab" * 32, lm), face_key("cd" * 32, None))


def test_scores_round_trip_and_are_ignored_when_made_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = LocalStore(str(tmp_path))
    assert load_scores(out, 1000) == {}
    keys = [face_key(f"{i:064x}", np.zeros(10, np.float32)) for i in range(3)]
    scores = {(keys[0], keys[1]): 0.97, (keys[2], keys[1]): 0.125}  # (reference, compared)
    out.write_bytes(pixel_cache.PIXEL_SCORES_KEY, scores_bytes(scores, 1000))
    assert load_scores(out, 1000) == scores
    assert load_scores(out, 2000) == {}  # another decode limit can give other pixels
    monkeypatch.setattr(pixel_cache, "SCORE_VERSION", pixel_cache.SCORE_VERSION + 1)
    assert load_scores(out, 1000) == {}
