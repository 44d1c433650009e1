"""Pixel evidence that two images are the same photograph, under the edits copies go through.

Two different photos of one person have near-identical embeddings by design, so embeddings alone
cannot tell a re-saved copy from a second photo; the pixels can. The score of a pair is built to
stay high under what copies go through and to drop when the photograph differs:

1. **One frame** (``clean.register``): the second image is mapped onto the first's canvas by
   its face landmarks or by matched keypoints, mirrored or not, then refined by ECC. The best of
   these registrations counts, so a crop, a letterbox, a rotation or a mirror costs nothing.
2. **The same sharpness**: the sharper side is blurred until the two agree best (a blurred,
   downscaled or upscaled copy has lost fine detail the original still has), and they are then
   compared in a band of detail just coarser than the blur: hair strands, eyelashes, skin texture
   and background edges, where two photos of one moment differ and a copy does not.
3. **Local and robust**: band-pass correlation in a 6x6 grid of blocks (each normalised on its
   own, so brightness, contrast, colour casts and grey conversion do not matter), averaged over
   the best three quarters of the blocks, so a caption, a watermark or a border covering a
   quarter of the canvas is outvoted by what the two images share.

The score lies in [-1, 1]; re-encoded, resized, cropped, padded, mirrored, rotated, recoloured,
blurred, sharpened, captioned and watermarked copies score 0.97-1.0 on every kind of face data
in ../shared, different photos of a person 0.6-0.9 (docs/BENCHMARKS.md, "Near-duplicate
evidence"). Photos of one sitting taken seconds apart (ORL's grayscale series) also reach 0.96-0.99:
at these resolutions they differ only by a glance, and this score cannot tell them from copies.
"""

from __future__ import annotations

import cv2
import numpy as np

from facesieve.clean.register import (
    SIZE,
    Picture,
    face_frame,
    keypoint_transform,
    mirrored_landmarks,
    refine,
    same_frame,
    warp,
)

SCORE_VERSION = 3  # bump when the same images and landmarks can score differently
BLUR_STEPS = (0.7, 1.0, 1.5, 2.0, 3.0, 4.0)  # Gaussian sigmas tried on the sharper side
GRID = 6  # blocks per canvas side
KEEP = 0.75  # share of blocks, the best-agreeing, that the score averages
MIN_COVER = 0.1  # share of the canvas both images must cover
SURE = 0.995  # a registration this good ends the search
COMPARED = 12  # registrations compared in full (all of them), the best-aligned first
COARSE_SIGMA = 2.0  # blur of the coarse look (``coarse_agreement``)


class _Blurs:
    """Gaussian blurs of one canvas over a mask, by sigma, each computed once.

    The blur runs over the mask only (normalised convolution): pixels outside it, where one
    image has no content, must not leak into the comparison near its edge. Blurring a blurred
    canvas again is one blur of the combined sigma (Gaussians compose), which is how the
    blur-matched bands are read from the same cache.
    """

    def __init__(self, x: np.ndarray, weight: np.ndarray, den: dict[float, np.ndarray]) -> None:
        self.xw, self.weight, self.den = x * weight, weight, den
        self.cache: dict[float, np.ndarray] = {}

    def __call__(self, sigma: float) -> np.ndarray:
        sigma = round(sigma, 4)
        if sigma not in self.cache:
            if sigma not in self.den:
                self.den[sigma] = np.maximum(cv2.GaussianBlur(self.weight, (0, 0), sigma), 1e-3)
            self.cache[sigma] = cv2.GaussianBlur(self.xw, (0, 0), sigma) / self.den[sigma]
        return self.cache[sigma]

    def band(self, pre: float, sigma: float) -> np.ndarray:
        """The band (sigma, 2 sigma) of the canvas blurred by ``pre`` first."""
        return self(float(np.hypot(pre, sigma))) - self(float(np.hypot(pre, 2 * sigma)))


def _ncc(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Normalised cross-correlation of ``a`` and ``b`` over the pixels where ``w`` is 1."""
    n = float(w.sum())
    if n < 2:
        return 0.0
    sa, sb = float((a * w).sum()), float((b * w).sum())
    cab = float((a * b * w).sum()) - sa * sb / n
    caa = float((a * a * w).sum()) - sa * sa / n
    cbb = float((b * b * w).sum()) - sb * sb / n
    d = np.sqrt(max(caa, 0.0) * max(cbb, 0.0))
    return cab / d if d > 1e-9 else 0.0


def _block_ncc(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Correlation of ``a`` and ``b`` in each block of a GRID x GRID grid with at least half its
    pixels in ``w`` and some detail in either image (flat in both is no evidence)."""
    step = SIZE // GRID
    cut = GRID * step

    def sums(v: np.ndarray) -> np.ndarray:
        return v[:cut, :cut].reshape(GRID, step, GRID, step).sum(axis=(1, 3)).astype(np.float64)

    n = sums(w)
    sa, sb = sums(a * w), sums(b * w)
    with np.errstate(divide="ignore", invalid="ignore"):
        caa = sums(a * a * w) - sa * sa / n
        cbb = sums(b * b * w) - sb * sb / n
        cab = sums(a * b * w) - sa * sb / n
        detail = np.maximum(caa, cbb) / n  # the larger variance of the two
        r = cab / np.sqrt(np.maximum(caa, 0) * np.maximum(cbb, 0))
    ok = (n >= 0.5 * step * step) & (detail >= 0.3**2) & np.isfinite(r)
    return r[ok]


def compare(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """Trimmed mean of blockwise band-pass correlations of two registered canvases, the
    sharper one blurred first until the two agree best."""
    w = mask.astype(np.float32)
    den: dict[float, np.ndarray] = {}
    bx, by = _Blurs(x, w, den), _Blurs(y, w, den)
    plain_x, plain_y = bx.band(0.0, 1.0), by.band(0.0, 1.0)
    best = (_ncc(plain_x, plain_y, w), 0.0, 0)
    for sigma in BLUR_STEPS:
        for side, (a, b) in enumerate(((bx.band(sigma, 1.0), plain_y),
                                       (plain_x, by.band(sigma, 1.0)))):  # fmt: skip
            c = _ncc(a, b, w)
            if c > best[0]:
                best = (c, sigma, side)
    _, sigma, side = best
    scale = max(1.0, 0.8 * sigma)
    pre_x, pre_y = (sigma, 0.0) if side == 0 else (0.0, sigma)
    found = _block_ncc(bx.band(pre_x, scale), by.band(pre_y, scale), w)
    if len(found) == 0:
        return -1.0
    ranked = np.sort(found)[::-1]
    return float(ranked[: max(1, round(len(ranked) * KEEP))].mean())


def coarse_agreement(a: Picture, frame_a: np.ndarray, b: Picture, landmarks_b: np.ndarray) -> float:
    """Correlation of the two face canvases at a coarse scale, registered by landmarks only
    (mirrored or not): a look costing a few milliseconds that rules out most pairs of
    different photos (their coarse agreement has a median of 0.6; every copy that
    ``same_photo_score`` confirmed on the evidence set reached 0.7 or had alike photo
    descriptors; docs/BENCHMARKS.md)."""
    x, inside_a = warp(a, frame_a)
    xs = cv2.GaussianBlur(x, (0, 0), COARSE_SIGMA)
    best = -1.0
    for mirrored in (False, True):
        pic = b.mirrored() if mirrored else b
        lm = mirrored_landmarks(landmarks_b, b.width) if mirrored else landmarks_b
        y, inside_b = warp(pic, face_frame(lm))
        both = inside_a & inside_b
        if both.mean() >= MIN_COVER:
            ys = cv2.GaussianBlur(y, (0, 0), COARSE_SIGMA)
            best = max(best, _ncc(xs, ys, both.astype(np.float32)))
    return best


def same_photo_score(
    a: Picture, frame_a: np.ndarray, b: Picture, landmarks_b: np.ndarray | None
) -> float:
    """How surely ``b`` is a copy of the photograph in ``a``: the best ``compare`` over
    registrations of ``b`` (by ``landmarks_b`` when given, by keypoints, and frame on frame),
    mirrored or not.

    ``frame_a`` maps ``a`` into the canvas (``face_frame`` of a face, or ``photo_frame``);
    -1 when no registration covers enough of the canvas.
    """
    x, inside_a = warp(a, frame_a)
    kernel = np.ones((5, 5), np.uint8)
    registered: list[tuple[float, np.ndarray, np.ndarray]] = []
    for mirrored in (False, True):
        pic = b.mirrored() if mirrored else b
        frames = []
        if landmarks_b is not None:
            lm = mirrored_landmarks(landmarks_b, b.width) if mirrored else landmarks_b
            frames.append(face_frame(lm))
        t = keypoint_transform(a, pic)
        if t is not None:
            frames.append(frame_a @ t)
        frames.append(frame_a @ same_frame(a, pic))
        for frame in frames:
            y, inside_b = warp(pic, frame)
            mask = cv2.erode((inside_a & inside_b).astype(np.uint8), kernel) > 0
            if mask.mean() < MIN_COVER:
                continue
            y2, mask2 = refine(x, y, mask)
            for yy, mm in ((y2, mask2), (y, mask)):
                if mm.mean() >= MIN_COVER:  # a quick look orders them: copies end early
                    mw = mm.astype(np.float32)
                    quick = _ncc(
                        cv2.GaussianBlur(x, (0, 0), 1.5), cv2.GaussianBlur(yy, (0, 0), 1.5), mw
                    )
                    registered.append((quick, yy, mm))
    best = -1.0
    for _, yy, mm in sorted(registered, key=lambda r: -r[0])[:COMPARED]:
        best = max(best, compare(x, yy, mm))
        if best >= SURE:
            break
    return best
