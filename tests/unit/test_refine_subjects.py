"""The labeled subject moves to the face its label's identity matches, unless the first guess
covers the image's central pixel (the convention of centred datasets)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from facesieve.clean.embeddings import EmbeddingRows
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.subjects import refine_subjects


def _inputs(boxes: list[list[float]], emb: np.ndarray) -> CleanInputs:
    n = len(boxes)
    return CleanInputs(
        images=pa.table({"image_id": ["a"], "width": [100], "height": [100]}),
        faces=pa.table({"bbox": pa.array(boxes, pa.list_(pa.float32(), 4))}),
        face_image=np.zeros(n, np.int64),
        emb=EmbeddingRows.of(emb.astype(np.float32)),
        cluster=np.zeros(n, np.int64),
        cluster_ids=np.zeros(n, np.int64),
        neighbors=np.full((n, 1), -1, np.int32),
        sims=np.full((n, 1), np.nan, np.float32),
        photo_desc=np.zeros((1, 128), np.uint8),
    )


def _refined(first_box: list[float]) -> int:
    emb = np.eye(2, 512)  # face 0 and face 1 are strangers; the label's identity is face 1
    inp = _inputs([first_box, [70, 5, 95, 30]], emb)
    subject = refine_subjects(
        inp,
        usable=np.ones(2, bool),
        subject=np.array([0]),
        image_label=np.array([0]),
        centroids=emb[1:2].astype(np.float32),
        has_identity=np.array([True]),
        min_cosine=0.15,
    )
    return int(subject[0])


def test_a_first_guess_on_the_central_pixel_stays_the_subject() -> None:
    assert _refined([30, 30, 70, 70]) == 0  # covers (50, 50): the label names this face


def test_an_off_centre_first_guess_moves_to_the_label_identity() -> None:
    assert _refined([5, 55, 40, 95]) == 1
