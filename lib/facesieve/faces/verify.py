"""1:1 verification: are the main faces of two photos the same person?

The threshold is the cosine that separates same-person from different-person pairs on LFW's
official 10-fold protocol with the bundled models (bench/lfw_verify.py; docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesieve import schema
from facesieve.errors import FacesieveError
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import Face, FaceEngine

DEFAULT_THRESHOLD = 0.225  # mean of the 10 per-fold LFW thresholds, docs/BENCHMARKS.md


@dataclass(frozen=True)
class VerifyResult:
    cosine: float
    same_person: bool
    threshold: float
    faces_a: int
    faces_b: int


def main_face(faces: list[Face]) -> Face:
    """The subject of a photo: its largest face (ties broken by detection order)."""
    return max(faces, key=lambda f: f.face_px)


def load_faces(
    engine: FaceEngine, data: bytes, name: str, max_pixels: int = 40_000_000
) -> list[Face]:
    """All faces of an image file's bytes; raises with a clear reason when there are none."""
    dec = decode_image(data, max_pixels, max(len(data), 1))
    if dec.status != schema.OK or dec.pixels is None:
        raise FacesieveError(f"{name}: {dec.status}: {dec.error}")
    faces = engine.analyze([dec.pixels])[0]
    if not faces:
        raise FacesieveError(f"{name}: no face found")
    return faces


def verify(
    engine: FaceEngine,
    a: bytes,
    b: bytes,
    threshold: float = DEFAULT_THRESHOLD,
    names: tuple[str, str] = ("image A", "image B"),
) -> VerifyResult:
    faces_a = load_faces(engine, a, names[0])
    faces_b = load_faces(engine, b, names[1])
    cos = float(np.dot(main_face(faces_a).embedding, main_face(faces_b).embedding))
    return VerifyResult(round(cos, 4), cos >= threshold, threshold, len(faces_a), len(faces_b))
