"""Which face of an image is its labeled subject, in centred datasets.

In LFW-style data (crops centred on the labeled person, bystanders at the edges) the subject is
the face whose box centre is nearest the image centre. Benchmarks, tests and the cleaning step's
first guess all use this one rule; uncentred photo collections need the identity evidence of the
cleaning step on top (``clean.subjects.refine_subjects``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


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
