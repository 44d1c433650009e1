"""Detect, align and embed faces in batches: the one place the models are called.

Detection batches images that share a detector input side (all of LFW's 250x250 images run as
one 256x256 batch); embedding batches the aligned crops of many images together. The same engine
serves the batch job, ``facesieve verify`` and ``facesieve search``.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass

import cv2
import numpy as np

from facesieve.config import FaceConfig
from facesieve.errors import ModelError
from facesieve.faces import quality, scrfd
from facesieve.faces.align import ARCFACE_TEMPLATE, CROP_SIZE, align_face
from facesieve.faces.backends import make_backend, resolve_device
from facesieve.faces.decode import decode_image
from facesieve.faces.model_pack import ModelPack

log = logging.getLogger(__name__)

# A face is cropped from pixels where it spans at least this much (the crop is 112 wide, so the
# warp then only shrinks it); smaller faces of a reduced decode are cropped from a finer decode.
ALIGN_MIN_PX = 2 * CROP_SIZE


@dataclass(frozen=True)
class Prepared:
    """One decoded image made ready for the detector (on a preprocessing thread)."""

    pixels: np.ndarray  # HxWx3 uint8 RGB as decoded (possibly reduced)
    scale: float  # original pixels per decoded pixel
    side: int  # detector input side; 0 for an aligned crop, which is not detected
    blob: np.ndarray | None  # (3, side, side) float32 detector input
    box_scale: float  # letterbox scale, decoded -> detector input pixels
    source: bytes | None = None  # the encoded file, to decode again for small faces' crops


@dataclass(frozen=True)
class Aligned:
    """The aligned crops of one image's faces, and where they are in original pixels."""

    crops: np.ndarray  # (n, 112, 112, 3) uint8
    boxes: np.ndarray  # (n, 4)
    landmarks: np.ndarray  # (n, 5, 2)
    scores: list[float | None]  # None for a pre-aligned crop
    sharpness: list[float]


@dataclass(frozen=True)
class Face:
    """One face: where it is, how good it looks, and its L2-normalised embedding."""

    bbox: np.ndarray  # (4,) x1 y1 x2 y2 in original pixels
    landmarks: np.ndarray  # (5, 2)
    det_score: float | None  # None for a pre-aligned crop
    face_px: float
    sharpness: float
    yaw: float
    embedding: np.ndarray  # (512,) float32, unit norm


def limit_threads(threads: int) -> None:
    """Cap OpenCV's and torch's CPU thread pools to this worker's share of the cores.

    Each library otherwise starts one thread per core in every worker process; several workers
    on one machine then oversubscribe the CPU (measured on a 16-core GPU host: 4 processes
    together were slower than one).
    """
    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")  # only if loaded: importing it costs CPU workers ~2 s
    if torch is not None:
        torch.set_num_threads(threads)


class FaceEngine:
    """Loads the two models once (per worker) and analyses lists of RGB images."""

    def __init__(self, cfg: FaceConfig, device: str = "auto", threads: int = 0) -> None:
        self.cfg = cfg
        if threads > 0:
            limit_threads(threads)
        self.models = ModelPack.resolve(cfg.detector, cfg.recognizer)
        self.device = resolve_device(device)
        self.det_batch, self.embed_batch = cfg.batches(self.device)
        self.detector = make_backend(self.models.detector, self.device, threads, self.det_batch)
        self.recognizer = make_backend(
            self.models.recognizer, self.device, threads, self.embed_batch
        )
        self.model_tag = self.models.recognizer_tag
        log.info("face engine on %s (%s)", self.device, self.detector.name)

    def is_aligned(self, image: np.ndarray) -> bool:
        """Whether to skip detection: ``--aligned yes``, or ``auto`` and exactly 112x112."""
        if self.cfg.aligned == "yes":
            return True
        return self.cfg.aligned == "auto" and image.shape[:2] == (CROP_SIZE, CROP_SIZE)

    def prepare(
        self, pixels: np.ndarray, scale: float = 1.0, source: bytes | None = None
    ) -> Prepared:
        """The detector input of one decoded image (letterboxed, normalised).

        Pure and thread-safe: the embed step runs it on its preprocessing threads while the
        models work on earlier images. ``scale`` is original pixels per decoded pixel of a
        reduced decode; ``source`` (its encoded bytes) lets alignment decode small faces finer.
        """
        if self.is_aligned(pixels):
            return Prepared(pixels, scale, 0, None, 1.0, source)
        side = scrfd.input_side(
            pixels.shape[0], pixels.shape[1], self.cfg.det_size, self.cfg.det_min_size
        )
        canvas, box_scale = scrfd.letterbox(pixels, side)
        return Prepared(pixels, scale, side, scrfd.to_input_one(canvas), box_scale, source)

    def detect(self, images: list[np.ndarray]) -> list[scrfd.Detections]:
        """Faces in each image (batched by detector input side), small faces dropped."""
        return self.detect_prepared([self.prepare(img) for img in images])

    def detect_prepared(self, items: list[Prepared]) -> list[scrfd.Detections]:
        """Faces in each prepared image, in decoded-image pixels; batched by input side.

        Aligned crops get no detections here (``align`` makes their one face). Small faces are
        dropped by their size in original pixels, so reduced decoding drops the same faces.
        """
        results: list[scrfd.Detections] = [scrfd.Detections.empty()] * len(items)
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            if item.side:
                buckets[item.side].append(i)
        for side, members in buckets.items():
            for start in range(0, len(members), self.det_batch):
                chunk = members[start : start + self.det_batch]
                blobs = [items[i].blob for i in chunk]
                outputs = self.detector.run(np.stack(blobs))  # type: ignore[arg-type]
                if len(outputs) != 9 or outputs[0].ndim != 3:
                    raise ModelError(
                        "detector must be an SCRFD *_bnkps model with batched outputs "
                        f"(9 outputs of rank 3), got {len(outputs)} outputs"
                    )
                for j, i in enumerate(chunk):
                    det = scrfd.decode(
                        outputs,
                        j,
                        side,
                        items[i].box_scale,
                        self.cfg.det_threshold,
                        self.cfg.nms_threshold,
                    )
                    results[i] = self._drop_small(det, items[i].scale)
        return results

    def _drop_small(self, det: scrfd.Detections, scale: float = 1.0) -> scrfd.Detections:
        if len(det) == 0 or self.cfg.min_face_px <= 0:
            return det
        sides = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
        keep = sides * scale >= self.cfg.min_face_px
        return scrfd.Detections(det.boxes[keep], det.scores[keep], det.landmarks[keep])

    def align(self, item: Prepared, det: scrfd.Detections) -> Aligned:
        """``align_detections``; thread-safe (the embed step's preprocessing threads run it)."""
        return align_detections(item, det)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) RGB uint8 crops -> (n, 512) unit-norm float32 embeddings."""
        if len(crops) == 0:
            return np.zeros((0, 512), np.float32)
        out = []
        step = self.embed_batch // 2 if self.cfg.flip else self.embed_batch
        for start in range(0, len(crops), max(step, 1)):
            chunk = crops[start : start + step]
            if self.cfg.flip:
                chunk = np.concatenate([chunk, chunk[:, :, ::-1]])
            x = chunk.astype(np.float32).transpose(0, 3, 1, 2)
            x = (x - 127.5) * (1.0 / 127.5)
            emb = self.recognizer.run(np.ascontiguousarray(x))[0].astype(np.float32)
            if self.cfg.flip:
                half = len(emb) // 2
                emb = emb[:half] + emb[half:]
            out.append(emb)
        emb = np.concatenate(out)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return np.ascontiguousarray(emb / np.maximum(norms, 1e-12), dtype=np.float32)

    def analyze(
        self,
        images: list[np.ndarray],
        scales: list[float] | None = None,
        pool: Executor | None = None,
        sources: list[bytes | None] | None = None,
    ) -> list[list[Face]]:
        """Every usable face of every image, in detection-score order.

        ``scales``: original pixels per decoded pixel of each image (reduced JPEG decoding);
        coordinates come back in original pixels; ``sources``: the encoded files, so that
        small faces of reduced images are cropped from a finer decode. With ``pool``,
        letterboxing and alignment run on its threads; the result is the same either way.
        """
        scales = scales or [1.0] * len(images)
        sources = sources or [None] * len(images)
        run = pool.map if pool is not None else map
        items = list(run(self.prepare, images, scales, sources))
        detections = self.detect_prepared(items)
        return self.finish(list(run(self.align, items, detections)))

    def finish(self, aligned: list[Aligned]) -> list[list[Face]]:
        """Embed the crops of many images in batches and make their ``Face`` records."""
        crops = [a.crops for a in aligned if len(a.crops)]
        embeddings = self.embed(np.concatenate(crops)) if crops else np.zeros((0, 512), np.float32)
        faces: list[list[Face]] = []
        at = 0
        for a in aligned:
            image_faces = []
            for k in range(len(a.crops)):
                box, lm = a.boxes[k], a.landmarks[k]
                image_faces.append(
                    Face(
                        bbox=box,
                        landmarks=lm,
                        det_score=a.scores[k],
                        face_px=quality.face_size(box),
                        sharpness=a.sharpness[k],
                        yaw=quality.yaw_degrees(lm),
                        embedding=embeddings[at + k],
                    )
                )
            at += len(a.crops)
            faces.append(image_faces)
        return faces


def align_detections(item: Prepared, det: scrfd.Detections) -> Aligned:
    """The 112x112 crops of one image's faces, with boxes and landmarks in original pixels.

    Pure and thread-safe. Crops come from the decoded pixels when every face there spans at
    least ``ALIGN_MIN_PX``; otherwise (a reduced decode of a photo with small faces) the file is
    decoded again at the coarsest scale that gives its smallest face that many pixels, or at
    full size, so reduced decoding never costs a small face its detail. Boxes and landmarks are
    scaled back by ``item.scale``: the tables always hold original pixels.
    """
    img = item.pixels
    factor = np.float32(item.scale)
    if not item.side:  # an aligned crop: the whole image is the face
        h, w = img.shape[:2]
        crop = img if (h, w) == (CROP_SIZE, CROP_SIZE) else cv2.resize(img, (CROP_SIZE, CROP_SIZE))
        lm = ARCFACE_TEMPLATE * np.array([w / CROP_SIZE, h / CROP_SIZE], np.float32)
        box = np.array([0, 0, w, h], np.float32)
        return Aligned(
            crop[None], box[None] * factor, lm[None] * factor, [None], [quality.sharpness(crop)]
        )
    boxes = det.boxes if item.scale == 1.0 else det.boxes * factor
    landmarks = det.landmarks if item.scale == 1.0 else det.landmarks * factor
    pixels, points = img, det.landmarks
    finer = crop_factor(boxes, item.scale)
    if finer < item.scale and item.source is not None:
        again = decode_image(item.source, 1 << 62, 1 << 62, factor=finer)
        if again.pixels is not None:
            pixels, points = again.pixels, landmarks / np.float32(again.scale)
    crops = [align_face(pixels, lm) for lm in points]
    stacked = np.stack(crops) if crops else np.zeros((0, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    return Aligned(
        stacked,
        boxes,
        landmarks,
        [float(x) for x in det.scores],
        [quality.sharpness(c) for c in crops],
    )


def crop_factor(boxes: np.ndarray, scale: float) -> int:
    """The coarsest reduction (<= ``scale``) at which every box (original pixels) still spans
    ``ALIGN_MIN_PX``; 1 (full size) when even that is too coarse."""
    if len(boxes) == 0:
        return int(scale)
    smallest = float(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).min())
    k = int(scale)
    while k > 1 and smallest / k < ALIGN_MIN_PX:
        k //= 2
    return k
