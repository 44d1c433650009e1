"""Pixel-level evidence that two images are the same photograph.

Two different photos of one person have near-identical embeddings by design, so embeddings alone
cannot tell a re-encoded copy from a second photo. The pixels around the face can: the same
photograph has the same hair strands, background and lighting. Each face becomes a small
grayscale "context patch": the image warped by the face's landmark similarity transform into a
64x64 canvas where the face fills the middle 40%, so the patch does not depend on resizing,
cropping (outside the patch) or where the face sits in the frame. Two patches are compared by
normalised cross-correlation over the pixels both cover; mirrored copies are caught by also
comparing with the mirror image's patch. On LFW and CelebA, the re-encoded, resized, cropped and
mirrored copies found had 5th percentiles of 0.95-0.99; different photos of one person had a
median of 0.34, and the few above 0.92 were burst shots (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facesieve.faces.align import ARCFACE_TEMPLATE, similarity_transform

SCORE_VERSION = 1  # bump when the same images and landmarks can score differently
CANVAS = 64
CONTEXT = 1.8  # canvas side / aligned-face side
BLUR_SIGMA = 1.5  # smooths away resolution and JPEG differences between copies
MIN_OVERLAP = 0.3  # share of the canvas both patches must cover to be compared
_DST = (ARCFACE_TEMPLATE - 56.0) * (CANVAS / (112.0 * CONTEXT)) + CANVAS / 2.0
_MIRROR_ORDER = [1, 0, 2, 4, 3]  # left/right eye and mouth corner swap places


@dataclass(frozen=True)
class Patch:
    pixels: np.ndarray  # (CANVAS, CANVAS) float32
    mask: np.ndarray  # (CANVAS, CANVAS) bool: inside the source image


def context_patch(gray: np.ndarray, landmarks: np.ndarray) -> Patch:
    """The face-aligned context patch of one face in a grayscale image."""
    lm = np.asarray(landmarks, np.float32).reshape(5, 2)
    m = similarity_transform(lm, _DST)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2].astype(np.float64)))))
    if scale < 0.5:  # shrink first (area filter) so the warp does not alias
        f = min(1.0, scale * 2)
        small = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        lm = lm * np.array([small.shape[1] / gray.shape[1], small.shape[0] / gray.shape[0]])
        gray = small
        m = similarity_transform(lm.astype(np.float32), _DST)
    size = (CANVAS, CANVAS)
    pix = cv2.warpAffine(gray.astype(np.float32), m, size, flags=cv2.INTER_LINEAR)
    ones = np.ones(gray.shape[:2], np.float32)
    mask = cv2.warpAffine(ones, m, size, flags=cv2.INTER_LINEAR) > 0.999
    pix = cv2.GaussianBlur(pix, (0, 0), BLUR_SIGMA)
    return Patch(pix, mask)


def mirrored_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    lm = np.asarray(landmarks, np.float32).reshape(5, 2).copy()
    lm[:, 0] = width - 1 - lm[:, 0]
    return lm[_MIRROR_ORDER]


def face_patches(rgb: np.ndarray, landmarks: np.ndarray) -> tuple[Patch, Patch]:
    """(patch, patch of the mirror image) for one face of an RGB image."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    flipped = np.ascontiguousarray(gray[:, ::-1])
    return (
        context_patch(gray, landmarks),
        context_patch(flipped, mirrored_landmarks(landmarks, gray.shape[1])),
    )


def correlation(a: Patch, b: Patch) -> float:
    """Normalised cross-correlation over the pixels both patches cover; -1 if too little."""
    both = a.mask & b.mask
    if both.mean() < MIN_OVERLAP:
        return -1.0
    x, y = a.pixels[both], b.pixels[both]
    x = x - x.mean()
    y = y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 1e-6 else -1.0


def same_photo_score(a: tuple[Patch, Patch], b: tuple[Patch, Patch]) -> float:
    """Best correlation of the two patches, or of either with the other's mirror patch.

    Symmetric: the mirror comparisons run both ways because the two warps interpolate
    differently."""
    return max(correlation(a[0], b[0]), correlation(a[0], b[1]), correlation(a[1], b[0]))
