"""The whole-photo descriptor: mirror images permute it exactly, borders are trimmed."""

from __future__ import annotations

import cv2
import numpy as np

from facesieve.faces.photo import DIM, as_vectors, photo_descriptor, trim_borders


def _photo(seed: int, h: int = 180, w: int = 240) -> np.ndarray:
    """A smooth random 'photo': noise blurred at two scales, in colour."""
    rng = np.random.default_rng(seed)
    img = rng.normal(128, 60, (h, w, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 6) + cv2.GaussianBlur(img, (0, 0), 1.5) * 0.5
    return np.clip(img, 0, 255).astype(np.uint8)


def _vec(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.frombuffer(photo_descriptor(rgb), np.uint8)[None]
    assert d.shape == (1, DIM) and d.max() == 255
    v, m = as_vectors(d)
    return v[0], m[0]


def test_mirror_image_is_the_permuted_descriptor() -> None:
    img = _photo(1)
    v, vm = _vec(img)
    w, _ = _vec(np.ascontiguousarray(img[:, ::-1]))
    assert float(vm @ w) > 0.999  # exact up to rounding to bytes
    assert float(v @ w) < 0.95  # the photo itself is not symmetric


def test_letterbox_bars_are_trimmed_and_other_photos_differ() -> None:
    img = _photo(2)
    padded = cv2.copyMakeBorder(img, 30, 30, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    assert trim_borders(cv2.cvtColor(padded, cv2.COLOR_RGB2GRAY)).shape == img.shape[:2]
    v, _ = _vec(img)
    assert float(v @ _vec(padded)[0]) > 0.99
    # re-saved smaller and greyer: still the same photo
    small = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    assert float(v @ _vec(grey)[0]) > 0.95
    assert float(v @ _vec(_photo(3))[0]) < 0.8


def test_a_flat_image_has_a_defined_descriptor() -> None:
    flat = np.full((50, 50, 3), 90, np.uint8)
    assert photo_descriptor(flat) == bytes(DIM)  # no gradient at all: zeros, not NaN
    assert trim_borders(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY)).shape[0] >= 50 // 3
