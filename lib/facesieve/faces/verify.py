"""1:1 verification: are the subject faces of two photos the same person?

Which face of a photo is compared is a choice (``--face``): by default the subject rule of
``faces.subject`` (a complete, central, large, well-detected face), or the largest face, the most
central one, every face (the best-matching pair wins), or the N-th face in detection order. The
threshold is the cosine that separates same-person from different-person pairs on LFW's official
10-fold protocol with the bundled models (bench/lfw_verify.py; docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from facesieve import schema
from facesieve.errors import ConfigError, FacesieveError
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import Face, FaceEngine
from facesieve.faces.subject import RULES, Rule, pick_face

DEFAULT_THRESHOLD = 0.225  # mean of the 10 per-fold LFW thresholds, docs/BENCHMARKS.md
FACE_CHOICES = (*RULES, "all")  # or a face number
FaceChoice = str | int  # one of FACE_CHOICES or a 0-based face number


@dataclass(frozen=True)
class Photo:
    """One decoded photo's faces in detection order (best detection score first; ``--face N``
    counts in this order, as ``face_index`` does in OUT/faces) and its size in pixels."""

    name: str
    width: int
    height: int
    faces: list[Face]


@dataclass(frozen=True)
class ChosenFace:
    index: int  # position in Photo.faces (detection order, 0-based)
    bbox: list[float]  # x1 y1 x2 y2, pixels
    face_px: float

    @classmethod
    def of(cls, photo: Photo, index: int) -> ChosenFace:
        f = photo.faces[index]
        return cls(index, [round(float(v), 1) for v in f.bbox], round(float(f.face_px), 1))


@dataclass(frozen=True)
class VerifyResult:
    cosine: float
    same_person: bool
    threshold: float
    faces_a: int
    faces_b: int
    face_a: ChosenFace  # the compared face of each photo (with --face all: the best pair)
    face_b: ChosenFace


def largest_face(faces: list[Face]) -> Face:
    """The largest face (ties broken by detection order): the ``--face largest`` rule on a list
    of faces, for callers that have no image size (benchmarks, tests)."""
    return max(faces, key=lambda f: f.face_px)


def load_photo(engine: FaceEngine, data: bytes, name: str, max_pixels: int = 40_000_000) -> Photo:
    """All faces of an image file's bytes; raises with a clear reason when there are none."""
    dec = decode_image(data, max_pixels, max(len(data), 1))
    if dec.status != schema.OK or dec.pixels is None:
        raise FacesieveError(f"{name}: {dec.status}: {dec.error}")
    faces = engine.analyze([dec.pixels])[0]
    if not faces:
        raise FacesieveError(f"{name}: no face found")
    height, width = dec.pixels.shape[:2]
    return Photo(name, int(width), int(height), faces)


def choose_faces(photo: Photo, choice: FaceChoice) -> list[int]:
    """Indices into ``photo.faces`` that ``choice`` selects: one face for a rule or a number,
    every face for ``all``. A number past the last face is a usage error (exit 2), not a silent
    fallback to another face."""
    n = len(photo.faces)
    if isinstance(choice, int):
        if not 0 <= choice < n:
            raise ConfigError(
                f"{photo.name}: --face {choice} is out of range: the image has {n} face"
                f"{'s' if n != 1 else ''} (0 to {n - 1}, best detection score first)"
            )
        return [choice]
    if choice == "all":
        return list(range(n))
    if choice not in RULES:
        raise ConfigError(f"--face {choice!r}: expected one of {', '.join(FACE_CHOICES)} or N")
    boxes = np.stack([f.bbox for f in photo.faces])
    dets = np.array([np.nan if f.det_score is None else f.det_score for f in photo.faces])
    return [pick_face(cast(Rule, choice), boxes, dets, photo.width, photo.height)]


def verify(
    engine: FaceEngine,
    a: bytes,
    b: bytes,
    threshold: float = DEFAULT_THRESHOLD,
    names: tuple[str, str] = ("image A", "image B"),
    face: FaceChoice = "subject",
) -> VerifyResult:
    """Compare the chosen face of A with that of B (``face`` applies to both photos); with
    ``all``, every face of A with every face of B, and the most similar pair decides."""
    photo_a = load_photo(engine, a, names[0])
    photo_b = load_photo(engine, b, names[1])
    ia, ib = choose_faces(photo_a, face), choose_faces(photo_b, face)
    ea = np.stack([photo_a.faces[i].embedding for i in ia])
    eb = np.stack([photo_b.faces[i].embedding for i in ib])
    sims = ea @ eb.T
    best_a, best_b = np.unravel_index(int(np.argmax(sims)), sims.shape)  # first of equal maxima
    cos = float(sims[best_a, best_b])
    return VerifyResult(
        round(cos, 4),
        cos >= threshold,
        threshold,
        len(photo_a.faces),
        len(photo_b.faces),
        ChosenFace.of(photo_a, ia[int(best_a)]),
        ChosenFace.of(photo_b, ib[int(best_b)]),
    )
