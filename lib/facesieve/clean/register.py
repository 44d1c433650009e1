"""Bringing two images of one photograph into one frame, whatever was done to either.

A near copy may be resized, cropped, padded, rotated or mirrored, so its pixels must be mapped
onto the other image's before they can be compared. Independent estimates are tried, and the
comparison keeps the best (``clean.pixels``):

- **landmarks**: the similarity transform that puts each face's five landmarks on the ArcFace
  template. Exact when the detector sees both faces alike; off by several percent in scale for
  faces that fill the whole frame (112x112 aligned crops, ORL), where the detector lacks context;
- **keypoints**: ORB features matched between the two images and a RANSAC similarity fit. It
  needs no face at all and is exact for crops and letterboxes, but finds too few matches in
  heavily blurred or tiny images;
- **frame on frame**: the two images' frames on each other, for a copy that was only resized,
  recoloured, blurred or re-saved (what keypoints can miss).

Either estimate is then refined by ECC (enhanced correlation coefficient, an affine warp) on the
canvas, and a refinement that wanders off (more than 15% scale or 8% shift) is dropped. All
frames map into one square canvas: for faces the aligned-face frame with some context around it
(the face fills the middle 1/CONTEXT of the side), for photos without a face the whole photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facesieve.faces.align import ARCFACE_TEMPLATE, similarity_transform

SIZE = 96  # canvas side, pixels
CONTEXT = 1.4  # canvas side / aligned-face side: hair, ears and some background
_DST = (ARCFACE_TEMPLATE - 56.0) * (SIZE / (112.0 * CONTEXT)) + SIZE / 2.0
_MIRROR_ORDER = [1, 0, 2, 4, 3]  # left/right eye and mouth corner swap places
KEYPOINT_SIDE = 320  # images are matched at this larger side
MIN_INLIERS = 8
_ORB = cv2.ORB_create(nfeatures=500, scaleFactor=1.2, nlevels=6, edgeThreshold=15, patchSize=15)
_ECC_STOP = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-4)


@dataclass
class Picture:
    """One decoded image, grey, ready to be registered; keypoints are found on first use."""

    gray: np.ndarray  # (H, W) float32
    _keypoints: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)
    _mirror: Picture | None = field(default=None, repr=False)

    @classmethod
    def of(cls, rgb: np.ndarray) -> Picture:
        return cls(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32))

    @property
    def width(self) -> int:
        return int(self.gray.shape[1])

    def mirrored(self) -> Picture:
        if self._mirror is None:
            self._mirror = Picture(np.ascontiguousarray(self.gray[:, ::-1]))
        return self._mirror

    def keypoints(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(points in image pixels, ORB descriptors) at KEYPOINT_SIDE; descriptors may be None."""
        if self._keypoints is None:
            h, w = self.gray.shape
            f = KEYPOINT_SIDE / max(h, w)
            how = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
            small = np.clip(cv2.resize(self.gray, None, fx=f, fy=f, interpolation=how), 0, 255)
            kp, des = _ORB.detectAndCompute(small.astype(np.uint8), None)
            pts = np.array([k.pt for k in kp], np.float32).reshape(-1, 2) / f
            self._keypoints = (pts, des)
        return self._keypoints


def mirrored_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    lm = np.asarray(landmarks, np.float32).reshape(5, 2).copy()
    lm[:, 0] = width - 1 - lm[:, 0]
    return lm[_MIRROR_ORDER]


def face_frame(landmarks: np.ndarray) -> np.ndarray:
    """3x3 matrix from image pixels to the canvas of the face with these landmarks."""
    m = similarity_transform(np.asarray(landmarks, np.float32).reshape(5, 2), _DST)
    return np.vstack([m.astype(np.float64), [0.0, 0.0, 1.0]])


def photo_frame(pic: Picture) -> np.ndarray:
    """3x3 matrix from image pixels to a canvas holding the whole photo, centred."""
    h, w = pic.gray.shape
    s = SIZE / max(h, w)
    return np.array([[s, 0, (SIZE - s * w) / 2], [0, s, (SIZE - s * h) / 2], [0, 0, 1.0]])


def warp(pic: Picture, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(canvas pixels, mask of canvas pixels inside the image) of ``pic`` under ``frame``.

    Large shrinks go through an area resize first, so the canvas does not alias.
    """
    empty = np.zeros((SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), bool)
    scale = float(np.sqrt(abs(np.linalg.det(frame[:2, :2]))))
    if not np.isfinite(scale) or not 0.01 < scale < 100:
        return empty
    gray, m = pic.gray, frame
    if scale < 0.5:
        f = scale * 2
        gray = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        m = frame @ np.diag([1 / f, 1 / f, 1.0])
    m2 = m[:2].astype(np.float32)
    pix = cv2.warpAffine(gray, m2, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones(gray.shape, np.float32), m2, (SIZE, SIZE)) > 0.999
    return pix, inside


def same_frame(a: Picture, b: Picture) -> np.ndarray:
    """3x3 map from ``b``'s pixels to ``a``'s when ``b`` is ``a`` resized, frame on frame: the
    registration of last resort, for copies too blurred or faded for keypoints."""
    (ha, wa), (hb, wb) = a.gray.shape, b.gray.shape
    return np.diag([wa / wb, ha / hb, 1.0])


def keypoint_transform(a: Picture, b: Picture) -> np.ndarray | None:
    """3x3 similarity from ``b``'s pixels to ``a``'s, from matched ORB keypoints; None when
    fewer than MIN_INLIERS matches agree."""
    pa, da = a.keypoints()
    pb, db = b.keypoints()
    if da is None or db is None or len(pa) < MIN_INLIERS or len(pb) < MIN_INLIERS:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(db, da, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    src = pb[[m.queryIdx for m in good]]
    dst = pa[[m.trainIdx for m in good]]
    tol = 3.0 * max(a.gray.shape) / KEYPOINT_SIDE
    t, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=tol)
    if t is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    return np.vstack([t.astype(np.float64), [0.0, 0.0, 1.0]])


def refine(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y`` warped by ECC onto ``x`` over ``mask``, with the mask it then covers; the input
    unchanged when ECC fails or wanders off."""
    w = np.eye(2, 3, dtype=np.float32)
    try:
        _, w = cv2.findTransformECC(
            cv2.GaussianBlur(x, (0, 0), 1.5),
            cv2.GaussianBlur(y, (0, 0), 1.5),
            w,
            cv2.MOTION_AFFINE,
            _ECC_STOP,
            mask.astype(np.uint8),
            1,
        )
    except cv2.error:
        return y, mask
    if np.abs(w[:, :2] - np.eye(2)).max() > 0.15 or np.abs(w[:, 2]).max() > 0.08 * SIZE:
        return y, mask
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    y2 = cv2.warpAffine(y, w, (SIZE, SIZE), flags=flags)
    m2 = cv2.warpAffine(mask.astype(np.float32), w, (SIZE, SIZE), flags=flags) > 0.999
    return y2, m2 & mask
