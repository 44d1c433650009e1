"""The same-photograph score: high for edited copies, low for another photo."""

from __future__ import annotations

import io
import random

import cv2
import numpy as np
import pytest
from PIL import Image

from facesieve.clean.pixels import same_photo_score
from facesieve.clean.register import Picture, photo_frame
from facesieve.config import CleanConfig
from facesieve.evaluate.edits import EDITS, apply_edit


def _photo(seed: int, h: int = 240, w: int = 320) -> np.ndarray:
    """A textured random 'photo' (keypoints to match, detail to compare)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(128, 70, (h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 4) * 1.5 + cv2.GaussianBlur(img, (0, 0), 1.0) * 0.6
    return np.clip(img - img.mean() + 128, 0, 255).astype(np.uint8)


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _decoded(data: bytes) -> Picture:
    return Picture.of(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


ORIGINAL = _jpeg(_photo(5))
THRESHOLD = CleanConfig().near_dup_min_pixel


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_every_edit_keeps_a_copy_above_the_threshold(edit: str) -> None:
    a = _decoded(ORIGINAL)
    b = _decoded(apply_edit(ORIGINAL, edit, random.Random(3)))
    assert same_photo_score(a, photo_frame(a), b, None) >= THRESHOLD


def test_another_photo_scores_low() -> None:
    a = _decoded(ORIGINAL)
    b = _decoded(_jpeg(_photo(6)))
    assert same_photo_score(a, photo_frame(a), b, None) < 0.5
