"""Which face of an image is its subject.

Two rules live here, one per kind of caller:

- ``central_rows`` / ``central_faces``: the face whose box centre is nearest the image centre.
  In LFW-style data (crops centred on the labeled person, bystanders at the edges) this is the
  labeled subject; benchmarks, tests and the cleaning step's first guess use it (uncentred photo
  collections need the identity evidence of the cleaning step on top:
  ``clean.subjects.refine_subjects``).
- ``subject_scores`` / ``pick_face``: the rule ``facesieve verify`` and ``facesieve search`` use for
  one photo of unknown framing. It prefers a complete, central, large, well-detected face, so a
  bystander cut off at the frame edge does not win on size alone (LFW ``Tony_Blair_0001``: a
  138 px half-face at the edge against the 137 px subject), and a tiny face that happens to sit in
  the middle does not beat the large complete one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa

Rule = Literal["subject", "largest", "central"]
RULES: tuple[Rule, ...] = ("subject", "largest", "central")


def central_rows(
    face_image: np.ndarray,
    boxes: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    prefer: np.ndarray | None = None,
) -> np.ndarray:
    """(I,) row of each image's most central face, -1 for images without one.

    ``face_image`` gives each face's image row; ``boxes`` are (F, 4) x1 y1 x2 y2; ``width`` and
    ``height`` are per image. Faces where ``prefer`` is True win over the others whatever their
    position (the cleaning step prefers faces large and sharp enough to be evidence).
    """
    subject = np.full(len(width), -1, np.int64)
    if len(face_image) == 0:
        return subject
    w = np.asarray(width, np.float64)[face_image]
    h = np.asarray(height, np.float64)[face_image]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)
    if prefer is not None:
        dist = dist + np.where(prefer, 0.0, 1e9)
    order = np.lexsort((np.arange(len(dist)), dist, face_image))  # by image, nearest first
    first = np.ones(len(order), bool)
    first[1:] = face_image[order][1:] != face_image[order][:-1]
    subject[face_image[order][first]] = order[first]
    return subject


def central_faces(images: pa.Table, faces: pa.Table) -> dict[str, int]:
    """image_id -> row in ``faces`` of the face nearest its image's centre.

    ``images`` needs ``image_id``, ``width``, ``height``; ``faces`` needs ``image_id`` and ``bbox``.
    Images without faces are absent from the result.
    """
    ids = images.column("image_id").to_pylist()
    pos = {i: n for n, i in enumerate(ids)}
    face_image = np.array([pos[i] for i in faces.column("image_id").to_pylist()], np.int64)
    boxes = np.asarray(faces.column("bbox").combine_chunks().flatten(), np.float32).reshape(-1, 4)
    rows = central_rows(
        face_image,
        boxes,
        images.column("width").to_numpy(zero_copy_only=False),
        images.column("height").to_numpy(zero_copy_only=False),
    )
    return {ids[i]: int(r) for i, r in enumerate(rows) if r >= 0}


def completeness(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """(F,) share of each box's area inside the image, in [0, 1].

    SCRFD extends the box of a face cut off by the frame beyond the image border, so a share
    below 1 means part of the face is missing from the photo.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    iw = np.clip(np.minimum(b[:, 2], width) - np.maximum(b[:, 0], 0), 0, None)
    ih = np.clip(np.minimum(b[:, 3], height) - np.maximum(b[:, 1], 0), 0, None)
    return np.where(area > 0, iw * ih / np.maximum(area, 1e-12), 0.0)


def subject_scores(
    boxes: np.ndarray, det_scores: np.ndarray, width: float, height: float
) -> np.ndarray:
    """(F,) subject score of each face of one image: the product of four factors in [0, 1].

    - completeness: the share of the box inside the frame (``completeness``);
    - centrality: 1 - (distance of the box centre from the image centre) / (half the diagonal);
    - size: the face's larger box side over the largest face's in this image;
    - detection score (NaN, for an aligned crop without detection, counts as 1).

    A product, not a weighted sum, so that no single strength makes up for a face that is
    mostly missing, far off-centre or tiny, and every factor reads the same way (1 = ideal).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(0)
    centres = (b[:, :2] + b[:, 2:]) / 2
    half_diag = max(float(np.hypot(width, height)) / 2, 1e-12)
    dist = np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2)
    centrality = np.clip(1 - dist / half_diag, 0, 1)
    sides = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    size = sides / max(float(sides.max()), 1e-12)
    det = np.asarray(det_scores, np.float64).reshape(-1)
    det = np.clip(np.where(np.isnan(det), 1.0, det), 0, 1)
    return completeness(b, width, height) * centrality * size * det


def pick_face(
    rule: Rule, boxes: np.ndarray, det_scores: np.ndarray, width: float, height: float
) -> int:
    """Index of one image's subject face under ``rule``; ties go to the earlier face.

    ``subject``: the highest ``subject_scores``; ``largest``: the largest box side; ``central``:
    the box centre nearest the image centre (``central_rows``, the rule of clean and benchmarks).
    Raises ValueError for an image without faces or an unknown rule.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        raise ValueError("no faces to choose from")
    if rule == "subject":
        return int(np.argmax(subject_scores(b, det_scores, width, height)))
    if rule == "largest":
        return int(np.argmax(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))
    if rule == "central":
        row = central_rows(np.zeros(len(b), np.int64), b, np.array([width]), np.array([height]))
        return int(row[0])
    raise ValueError(f"unknown subject rule {rule!r}; expected one of {', '.join(RULES)}")
