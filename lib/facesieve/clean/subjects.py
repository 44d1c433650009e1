"""Which faces are usable, and which face of each image is its subject.

In a labeled image the subject is the face that agrees with its label's identity: bystanders are
ignored, not counted as errors. Before identities are known, the first guess is the usable face
nearest the image centre (LFW-style crops); ``refine_subjects`` then moves the subject to the
face most similar to the label's identity once that identity exists, unless the first guess
covers the image's central pixel: by the convention of centred datasets (LFW: "the face that
contains the central pixel of the image is the defining face") that face is the one the label
names, and a label that names someone beside it is a labelling error to report, not to explain
away (the second half of two swapped photos of a pair of sisters, say). In unlabeled
collections every image's subject is its largest usable face (what the report shows).
"""

from __future__ import annotations

import numpy as np

from facesieve.clean.inputs import CleanInputs
from facesieve.config import CleanConfig
from facesieve.faces.subject import central_rows


def usable_faces(inp: CleanInputs, cfg: CleanConfig) -> np.ndarray:
    """(F,) bool: large, confident and sharp enough for identity evidence."""
    f = inp.faces
    px = f.column("face_px").to_numpy(zero_copy_only=False)
    det = f.column("det_score").to_numpy(zero_copy_only=False).astype(np.float64)
    sharp = f.column("sharpness").to_numpy(zero_copy_only=False)
    det_ok = np.isnan(det) | (det >= cfg.min_det_score)  # aligned crops have no score
    return (px >= cfg.min_face_px) & det_ok & (sharp >= cfg.min_sharpness)


def first_subjects(inp: CleanInputs, usable: np.ndarray) -> np.ndarray:
    """(I,) face row of each image's first-guess subject, -1 for images without faces: the
    project's one centred-subject rule (``faces.subject``), usable faces first."""
    boxes = np.asarray(inp.faces.column("bbox").combine_chunks().flatten(), np.float32)
    return central_rows(
        inp.face_image,
        boxes.reshape(-1, 4),
        inp.images.column("width").to_numpy(zero_copy_only=False),
        inp.images.column("height").to_numpy(zero_copy_only=False),
        prefer=usable,
    )


def largest_subjects(inp: CleanInputs, usable: np.ndarray) -> np.ndarray:
    """(I,) row of each image's largest face, usable faces first (unlabeled collections: the
    same rule as ``--face largest`` in verify)."""
    subject = np.full(inp.n_images, -1, np.int64)
    if len(inp.face_image) == 0:
        return subject
    px = inp.faces.column("face_px").to_numpy(zero_copy_only=False)
    order = np.lexsort((np.arange(len(px)), -px, ~usable, inp.face_image))
    img = inp.face_image[order]
    first = np.ones(len(order), bool)
    first[1:] = img[1:] != img[:-1]
    subject[img[first]] = order[first]
    return subject


def covers_centre(inp: CleanInputs, subject: np.ndarray) -> np.ndarray:
    """(I,) whether each image's subject face box contains the image's central pixel."""
    out = np.zeros(inp.n_images, bool)
    rows = np.flatnonzero(subject >= 0)
    if len(rows) == 0:
        return out
    boxes = np.asarray(inp.faces.column("bbox").combine_chunks().flatten(), np.float32)
    b = boxes.reshape(-1, 4)[subject[rows]]
    w = inp.images.column("width").to_numpy(zero_copy_only=False)[rows].astype(np.float64)
    h = inp.images.column("height").to_numpy(zero_copy_only=False)[rows].astype(np.float64)
    cx, cy = w / 2, h / 2
    out[rows] = (b[:, 0] <= cx) & (cx <= b[:, 2]) & (b[:, 1] <= cy) & (cy <= b[:, 3])
    return out


def refine_subjects(
    inp: CleanInputs,
    usable: np.ndarray,
    subject: np.ndarray,
    image_label: np.ndarray,
    centroids: np.ndarray,
    has_identity: np.ndarray,
    min_cosine: float,
) -> np.ndarray:
    """Move each labeled image's subject to its usable face most similar to the label identity.

    ``image_label`` holds label codes per image (-1 unlabeled); ``centroids`` (L, 512) unit
    vectors per label code, valid where ``has_identity``. The subject moves only when that face
    reaches ``min_cosine``: a face that agrees with nothing keeps the first guess (and becomes the
    evidence against the label). A first guess that covers the central pixel never moves.
    """
    fixed = covers_centre(inp, subject) & (subject >= 0)
    fixed[fixed] = usable[subject[fixed]]
    subject = subject.copy()
    if len(inp.face_image) == 0:
        return subject
    lab = image_label[inp.face_image]
    rows = np.flatnonzero(usable & (lab >= 0))
    rows = rows[has_identity[lab[rows]]]
    if len(rows) == 0:
        return subject
    sims = np.concatenate(
        [
            np.einsum("fd,fd->f", inp.emb[c], centroids[lab[c]])
            for c in np.array_split(rows, max(1, len(rows) // 4096))
        ]
    )
    img = inp.face_image[rows]
    order = np.lexsort((-sims, img))
    first = np.ones(len(order), bool)
    first[1:] = img[order][1:] != img[order][:-1]
    best_row, best_sim = rows[order][first], sims[order][first]
    move = (best_sim >= min_cosine) & ~fixed[img[order][first]]
    subject[img[order][first][move]] = best_row[move]
    return subject
