"""Near-duplicate candidates from photo descriptors: mirror images and faceless photos."""

from __future__ import annotations

import cv2
import numpy as np
import pyarrow as pa
import pytest

from facesieve.clean.candidates import photo_candidates
from facesieve.clean.embeddings import EmbeddingRows
from facesieve.clean.inputs import CleanInputs
from facesieve.config import CleanConfig
from facesieve.faces.photo import photo_descriptor


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.normal(128, 60, (120, 160, 3)).astype(np.float32), (0, 0), 5)
    return np.clip(img, 0, 255).astype(np.uint8)


def _inputs(descriptors: list[bytes | None]) -> CleanInputs:
    n = len(descriptors)
    desc = np.zeros((n, 128), np.uint8)
    for i, d in enumerate(descriptors):
        if d is not None:
            desc[i] = np.frombuffer(d, np.uint8)
    empty = np.zeros(0, np.int64)
    return CleanInputs(
        images=pa.table({"image_id": [f"{i:016x}" for i in range(n)]}),
        faces=pa.table({"face_id": pa.array([], pa.string())}),
        face_image=empty,
        emb=EmbeddingRows.of(np.zeros((0, 512), np.float32)),
        cluster=empty,
        cluster_ids=empty,
        neighbors=np.zeros((0, 1), np.int32),
        sims=np.zeros((0, 1), np.float32),
        photo_desc=desc,
    )


def test_mirror_copies_pair_up_and_strangers_do_not() -> None:
    a, b = _photo(1), _photo(2)
    descs = [photo_descriptor(a), photo_descriptor(b),
             photo_descriptor(np.ascontiguousarray(a[:, ::-1])), None]  # fmt: skip
    inp = _inputs(descs)
    canon = np.arange(4)
    cfg = CleanConfig()
    no_face = np.zeros(4, bool)
    assert photo_candidates(inp, no_face, canon, cfg) == {(0, 2)}  # the undecoded one is out
    # an exact copy's group is represented by its kept image only
    canon[2] = 0
    assert photo_candidates(inp, no_face, canon, cfg) == set()


def test_the_bar_is_higher_when_both_images_have_faces() -> None:
    a = _photo(3)
    brighter = np.clip(a.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    inp = _inputs([photo_descriptor(a), photo_descriptor(cv2.GaussianBlur(brighter, (0, 0), 3))])
    canon = np.arange(2)
    cfg = CleanConfig(photo_dup_min_similarity=0.999, photo_dup_min_similarity_no_face=0.8)
    assert photo_candidates(inp, np.zeros(2, bool), canon, cfg) == {(0, 1)}
    assert photo_candidates(inp, np.ones(2, bool), canon, cfg) == set()


def test_blocks_of_queries_find_what_one_search_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    from facesieve.clean import candidates

    photos = [_photo(10 + i) for i in range(12)]
    copies = [np.ascontiguousarray(p[:, ::-1]) for p in photos[:4]]  # 4 mirror copies
    copies += [np.clip(p.astype(np.int16) + 3, 0, 255).astype(np.uint8) for p in photos[4:7]]
    inp = _inputs([photo_descriptor(p) for p in photos + copies])
    canon, no_face, cfg = np.arange(19), np.zeros(19, bool), CleanConfig()
    whole = photo_candidates(inp, no_face, canon, cfg)
    assert {(i, 12 + i) for i in range(7)} <= whole
    for block, exact_below in ((5, 50_000), (5, 10)):  # blocks; blocks into an IVF index
        monkeypatch.setattr(candidates, "PHOTO_BLOCK", block)
        monkeypatch.setattr(candidates, "EXACT_SEARCH_BELOW", exact_below)
        got = photo_candidates(inp, no_face, canon, cfg)
        assert got == whole if exact_below > 19 else {(i, 12 + i) for i in range(7)} <= got
