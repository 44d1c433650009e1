"""Detect, align and embed faces in batches: the one place the models are called.

Detection batches images that share a detector input side (all of LFW's 250x250 images run as
one 256x256 batch); embedding batches the aligned crops of many images together. The same engine
serves the batch job, ``facesieve verify`` and ``facesieve search``.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from facesieve.config import FaceConfig
from facesieve.errors import ModelError
from facesieve.faces import quality, scrfd
from facesieve.faces.align import ARCFACE_TEMPLATE, CROP_SIZE, align_face
from facesieve.faces.backends import make_backend, resolve_device
from facesieve.faces.model_pack import ModelPack

log = logging.getLogger(__name__)


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

    def detect(self, images: list[np.ndarray]) -> list[scrfd.Detections]:
        """Faces in each image (batched by detector input side), small faces dropped."""
        results: list[scrfd.Detections] = [scrfd.Detections.empty()] * len(images)
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            side = scrfd.input_side(
                img.shape[0], img.shape[1], self.cfg.det_size, self.cfg.det_min_size
            )
            buckets[side].append(i)
        for side, members in buckets.items():
            for start in range(0, len(members), self.det_batch):
                chunk = members[start : start + self.det_batch]
                boxed = [scrfd.letterbox(images[i], side) for i in chunk]
                outputs = self.detector.run(scrfd.to_input([c for c, _ in boxed]))
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
                        boxed[j][1],
                        self.cfg.det_threshold,
                        self.cfg.nms_threshold,
                    )
                    results[i] = self._drop_small(det)
        return results

    def _drop_small(self, det: scrfd.Detections) -> scrfd.Detections:
        if len(det) == 0 or self.cfg.min_face_px <= 0:
            return det
        sides = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
        keep = sides >= self.cfg.min_face_px
        return scrfd.Detections(det.boxes[keep], det.scores[keep], det.landmarks[keep])

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

    def analyze(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Every usable face of every image, in detection-score order."""
        aligned = [self.is_aligned(img) for img in images]
        to_detect = [i for i, a in enumerate(aligned) if not a]
        detections = dict(zip(to_detect, self.detect([images[i] for i in to_detect]), strict=True))
        crops: list[np.ndarray] = []
        meta: list[tuple[int, np.ndarray, np.ndarray, float | None]] = []
        for i, img in enumerate(images):
            if aligned[i]:
                h, w = img.shape[:2]
                crop = (
                    img
                    if (h, w) == (CROP_SIZE, CROP_SIZE)
                    else cv2.resize(img, (CROP_SIZE, CROP_SIZE))
                )
                sx, sy = w / CROP_SIZE, h / CROP_SIZE
                lm = ARCFACE_TEMPLATE * np.array([sx, sy], np.float32)
                crops.append(crop)
                meta.append((i, np.array([0, 0, w, h], np.float32), lm, None))
                continue
            det = detections[i]
            for box, score, lm in zip(det.boxes, det.scores, det.landmarks, strict=True):
                crops.append(align_face(img, lm))
                meta.append((i, box, lm, float(score)))
        embeddings = self.embed(np.stack(crops)) if crops else np.zeros((0, 512), np.float32)
        faces: list[list[Face]] = [[] for _ in images]
        for (i, box, lm, score), crop, emb in zip(meta, crops, embeddings, strict=True):
            faces[i].append(
                Face(
                    bbox=box,
                    landmarks=lm,
                    det_score=score,
                    face_px=quality.face_size(box),
                    sharpness=quality.sharpness(crop),
                    yaw=quality.yaw_degrees(lm),
                    embedding=emb,
                )
            )
        return faces
