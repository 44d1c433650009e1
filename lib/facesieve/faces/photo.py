"""A small descriptor of the whole photo, so copies are found where faces cannot find them.

Face embeddings find most near copies, but not a photo without a usable face (a landscape, a
dog, faces too small), nor a copy blurred so much that its face embedding moved (a 2-pixel blur
of a 1000-pixel group photo leaves 40-pixel faces at cosine 0.1-0.6 with their originals). Those
are found by this descriptor of the whole photo, computed once per image at embed time from the
pixels already decoded there (``images.photo_desc``):

- uniform borders are trimmed first (letterbox bars, frames), so padding changes nothing;
- the grey image at 64x64 is blurred, and gradient orientations are histogrammed in a 4x4 grid
  of cells (8 orientation bins, linear between bin centres, weighted by magnitude, square-rooted):
  colour, brightness, contrast, grey conversion, blur and JPEG barely move it, and a crop of up
  to 15% a side moves it less than two different photos differ;
- mirroring permutes it exactly (cells flip left-right, orientation t becomes pi - t), so a
  search compares both orientations without storing two descriptors.

On the near-duplicate set of ``bench/neardup_data.py`` (every kind of face data, 13 edits) the
original was among a copy's 5 nearest descriptors for 97.6% of copies; together with face
candidates 99.4% of copies became candidates (docs/BENCHMARKS.md, "Near-duplicate evidence").
The descriptor only proposes pairs; ``clean.pixels`` decides.
"""

from __future__ import annotations

import cv2
import numpy as np

SIDE = 64  # the photo is described at this size
CELLS = 4  # cells per side
BINS = 8  # orientation bins over [0, pi)
DIM = CELLS * CELLS * BINS  # 128 bytes per image
_FLAT = 16  # a border row or column whose grey values span at most this is a bar


def trim_borders(gray: np.ndarray) -> np.ndarray:
    """``gray`` without uniform rows and columns at its edges (at most 2/3 of either side)."""
    h, w = gray.shape
    rows = np.ptp(gray, axis=1) <= _FLAT
    cols = np.ptp(gray, axis=0) <= _FLAT
    top = _run(rows, h // 3)
    bottom = h - _run(rows[::-1], h // 3)
    left = _run(cols, w // 3)
    right = w - _run(cols[::-1], w // 3)
    return gray[top:bottom, left:right]


def _run(flat: np.ndarray, limit: int) -> int:
    """Length of the leading run of True, at most ``limit``."""
    n = int(np.argmin(flat)) if not flat.all() else len(flat)
    return min(n, limit)


def photo_descriptor(rgb: np.ndarray) -> bytes:
    """The descriptor of an RGB image as DIM bytes (uint8, scaled so its largest value is 255)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    gray = trim_borders(gray)
    small = cv2.resize(gray.astype(np.float32), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1)
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % np.pi) / np.pi * BINS - 0.5  # bin centres at integers
    lo = np.floor(pos)
    frac = pos - lo
    lo = lo.astype(np.int64) % BINS
    hi = (lo + 1) % BINS
    cell = (np.arange(SIDE) * CELLS // SIDE)[:, None] * CELLS + np.arange(SIDE) * CELLS // SIDE
    index = cell * BINS
    hist = np.bincount((index + lo).ravel(), (mag * (1 - frac)).ravel(), DIM)
    hist += np.bincount((index + hi).ravel(), (mag * frac).ravel(), DIM)
    hist = np.sqrt(hist)
    top = float(hist.max())
    return (np.round(hist / top * 255) if top > 0 else hist).astype(np.uint8).tobytes()


_MIRROR = np.array(
    [
        (r * CELLS + (CELLS - 1 - c)) * BINS + (BINS - 1 - b)
        for r in range(CELLS)
        for c in range(CELLS)
        for b in range(BINS)
    ]
)


def as_vectors(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, DIM) uint8 descriptors -> (vectors, mirror-image vectors), centred, unit norm, float32;
    their dot product is the similarity used for candidates."""
    x = descriptors.astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)
    return np.ascontiguousarray(x), np.ascontiguousarray(x[:, _MIRROR])
