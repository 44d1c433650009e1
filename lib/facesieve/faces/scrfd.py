"""SCRFD post-processing and the detector input-size rule, as pure numpy.

SCRFD predicts, for every cell of three feature maps (strides 8, 16, 32) and two anchors per
cell, a score, four distances to the box sides and ten keypoint offsets, all in stride units.
Decoding turns those into pixel boxes and 5 landmarks; greedy NMS removes overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, in original-image pixels, sorted by score (best first)."""

    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2
    scores: np.ndarray  # (n,) float32
    landmarks: np.ndarray  # (n, 5, 2) float32: eyes (image-left, image-right), nose, mouth corners

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )


def input_side(height: int, width: int, max_side: int, min_side: int) -> int:
    """Square detector input side for an image: its longer side rounded up to a multiple of 32,
    clamped to [min_side, max_side].

    Large photos are shrunk to ``max_side``; small ones (LFW's 250x250) are padded to 256 instead
    of being inflated to 640, which is ~6x fewer pixels for the same faces.
    """
    side = -(-max(height, width) // 32) * 32
    return int(min(max(side, min_side), max_side))


def letterbox(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Shrink (never enlarge) ``image`` to fit ``side`` and pad bottom/right with black.

    Returns the padded HxWx3 uint8 canvas and the scale from original to canvas pixels.
    """
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[: image.shape[0], : image.shape[1]] = image
    return canvas, scale


def to_input(canvases: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 canvases -> NCHW float32 normalised as SCRFD was trained: (x - 127.5) / 128."""
    batch = np.stack(canvases).astype(np.float32)
    batch -= 127.5
    batch *= 1.0 / 128.0
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def to_input_one(canvas: np.ndarray) -> np.ndarray:
    """One canvas -> its (3, side, side) slice of ``to_input``, bit for bit.

    Normalising image by image lets preprocessing threads do it (numpy releases the GIL), so the
    inference thread only stacks finished inputs: for a 608x608 input this is most of the
    preprocessing time.
    """
    x = canvas.astype(np.float32)
    x -= 127.5
    x *= 1.0 / 128.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


@lru_cache(maxsize=64)
def anchor_centers(side: int, stride: int) -> np.ndarray:
    """(cells * 2, 2) anchor centres in pixels, row-major, two consecutive per cell."""
    n = side // stride
    ys, xs = np.mgrid[:n, :n]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, ANCHORS_PER_CELL, axis=0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode(
    outputs: list[np.ndarray],
    index: int,
    side: int,
    scale: float,
    score_threshold: float,
    nms_threshold: float,
) -> Detections:
    """Decode image ``index`` of a batch of SCRFD outputs (scores x3, boxes x3, keypoints x3)."""
    boxes, scores, kps = [], [], []
    for level, stride in enumerate(STRIDES):
        s = outputs[level][index].reshape(-1)
        keep = np.nonzero(s >= score_threshold)[0]
        if keep.size == 0:
            continue
        centers = anchor_centers(side, stride)[keep]
        d = outputs[level + 3][index].reshape(-1, 4)[keep] * stride
        k = outputs[level + 6][index].reshape(-1, 10)[keep] * stride
        boxes.append(np.concatenate([centers - d[:, :2], centers + d[:, 2:]], axis=1))
        kps.append(k.reshape(-1, 5, 2) + centers[:, None, :])
        scores.append(s[keep])
    if not scores:
        return Detections.empty()
    all_boxes = np.concatenate(boxes) / scale
    all_kps = np.concatenate(kps) / scale
    all_scores = np.concatenate(scores)
    keep = nms(all_boxes, all_scores, nms_threshold)
    return Detections(
        all_boxes[keep].astype(np.float32),
        all_scores[keep].astype(np.float32),
        all_kps[keep].astype(np.float32),
    )
