"""Exact duplicates (same bytes) and near duplicates (the same photograph, transformed).

Exact: decodable images (status ``ok`` or ``no_face``) sharing a SHA-256; broken files that
share bytes (truncated copies of one file) are each a decode error, not copies of a photo.
Near: candidate pairs (``clean.candidates``: faces whose embeddings agree, photos whose
descriptors agree) whose pixels say they are one photograph (``clean.pixels``, at least
``near_dup_min_pixel``); the pixels are what keeps two different photos of one person apart.
Copies are grouped (a chain of copies is one group) and each group keeps its best copy: one
with a usable face whose label its identity supports, then decodable, most pixels, most bytes,
and the smallest image_id so reruns agree; the others point to it. A group whose copies carry
different labels is also a labelling problem: ``across_labels`` names every member of such a
group.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from facesieve import schema
from facesieve.clean.candidates import Candidate, candidates
from facesieve.clean.fetch import fetch_bytes
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.pixel_cache import PairKey, face_key
from facesieve.clean.pixels import SURE, coarse_agreement, same_photo_score
from facesieve.clean.register import Picture, face_frame, photo_frame
from facesieve.clean.unionfind import UnionFind
from facesieve.config import CleanConfig
from facesieve.faces.decode import decode_image
from facesieve.faces.photo import as_vectors

log = logging.getLogger(__name__)
# long comparisons report where they are on the progress logger (runner.progress), which nightly
# logs show by default; the clean step itself is one unit
progress = logging.getLogger("facesieve.progress")

CHUNK = 256  # candidate pairs whose images are read and decoded together
# A face pair whose canvases disagree at a coarse scale and whose photos look unalike is not
# compared in full: its score is the coarse agreement (below any threshold in use). Chosen on
# bench/neardup_evidence.py's set: no confirmed copy was lost, 62% of different photos skipped.
COARSE_MIN = 0.7
PHOTO_MIN = 0.8
# Other faces the two images share (bystanders of one photo) are compared too when the framing
# pair is not already sure: a watermark across the subject's face leaves a bystander's intact.
# Their embeddings must agree as a candidate pair's do; at most this many, best first.
ALTERNATIVES = 3
ALTERNATIVE_MIN_COSINE = 0.75
PROGRESS_S = 30.0  # at most one progress line this often


@dataclass(frozen=True)
class Duplicates:
    exact: dict[int, int]  # image row -> image row finally kept in its place
    near: dict[int, tuple[int, float]]  # image row -> (kept image row, pixel score)
    across_labels: dict[int, int]  # image row -> kept row, for groups holding several labels
    candidates: int  # image pairs proposed by faces or photo descriptors
    checked: int  # of those, pairs whose pixels could be compared
    reused: int  # of those, pairs scored by an earlier report (``clean.pixel_cache``)
    scores: dict[PairKey, float]  # the pixel score of every compared pair, to keep


def _quality_order(inp: CleanInputs, distrust: np.ndarray) -> np.ndarray:
    """Rank of each image as the copy to keep: 0 = best."""
    img = inp.images
    ok = np.array([s == "ok" for s in img.column("status").to_pylist()])
    w = np.nan_to_num(img.column("width").to_numpy(zero_copy_only=False).astype(float))
    h = np.nan_to_num(img.column("height").to_numpy(zero_copy_only=False).astype(float))
    size = img.column("bytes").to_numpy(zero_copy_only=False).astype(float)
    ids = np.array(img.column("image_id").to_pylist())
    order = np.lexsort((ids, -size, -(w * h), ~ok, distrust))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def exact_groups(inp: CleanInputs) -> list[list[int]]:
    """Rows of decodable images with the same bytes, groups of two or more."""
    sha = inp.images.column("sha256").to_pylist()
    size = inp.images.column("bytes").to_pylist()
    status = inp.images.column("status").to_pylist()
    groups: dict[str, list[int]] = {}
    for row, (h, n, st) in enumerate(zip(sha, size, status, strict=True)):
        if h and n and st in schema.DECODED:
            groups.setdefault(h, []).append(row)
    return [rows for rows in groups.values() if len(rows) > 1]


def find_duplicates(
    inp: CleanInputs,
    faces: np.ndarray,
    reference_face: np.ndarray,
    cfg: CleanConfig,
    s3_endpoint: str | None,
    max_pixels: int,
    known: dict[PairKey, float] | None = None,
    distrust: np.ndarray | None = None,
) -> Duplicates:
    """Exact and near duplicates. ``faces``: face rows whose embeddings may propose pairs;
    ``reference_face``: the face framing each image (-1 none); ``known``: pixel scores kept
    from an earlier report; ``distrust``: images kept only when no other copy can be (no usable
    face, or a label the identity rules doubt)."""
    rank = _quality_order(inp, np.zeros(inp.n_images, bool) if distrust is None else distrust)
    canon = np.arange(inp.n_images)
    for rows in exact_groups(inp):
        keep = min(rows, key=lambda r: rank[r])
        canon[rows] = keep
    cands = candidates(inp, faces, reference_face, canon, cfg)
    scores, keys = _scores(inp, cands, known or {}, s3_endpoint, max_pixels)
    confirmed = [(c, s) for c, s in zip(cands, scores, strict=True)
                 if s is not None and s >= cfg.near_dup_min_pixel]  # fmt: skip
    exact, near, across = _resolve(inp, canon, rank, confirmed)
    kept = {k: s for k, s in zip(keys, scores, strict=True) if k is not None and s is not None}
    reused = sum(k in (known or {}) for k in kept)
    log.info(
        "duplicates: %d exact, %d near, %d in groups across labels (%d candidate pairs, "
        "%d compared, %d of them earlier)",
        len(exact),
        len(near),
        len(across),
        len(cands),
        len(kept),
        reused,
    )
    return Duplicates(exact, near, across, len(cands), len(kept), reused, kept)


def _resolve(
    inp: CleanInputs,
    canon: np.ndarray,
    rank: np.ndarray,
    confirmed: list[tuple[Candidate, float]],
) -> tuple[dict[int, int], dict[int, tuple[int, float]], dict[int, int]]:
    """(exact, near, across labels) from byte-copy groups (``canon``) and confirmed near pairs:
    every group of copies, chains included, keeps its best-ranked image."""
    groups = UnionFind(inp.n_images)
    copies = np.flatnonzero(canon != np.arange(inp.n_images))
    for row in copies.tolist():
        groups.union(row, int(canon[row]))
    best: dict[int, float] = {}
    for c, score in confirmed:
        groups.union(c.ref, c.other)
        for x in (c.ref, c.other):
            best[x] = max(best.get(x, -1.0), score)
    members: dict[int, set[int]] = {}
    for row in set(best) | set(copies.tolist()):
        members.setdefault(groups.find(row), set()).update((row, int(canon[row])))
    labels = inp.images.column("label").to_pylist()
    exact: dict[int, int] = {}
    near: dict[int, tuple[int, float]] = {}
    across: dict[int, int] = {}
    for rows in members.values():
        keep = min(rows, key=lambda r: rank[r])
        for r in sorted(rows - {keep}):
            if canon[r] != r:  # a byte copy: of the kept image, or of one of its near copies
                exact[r] = keep
            else:
                near[r] = (keep, best[r])
        if len({labels[r] for r in rows if labels[r] is not None}) > 1:
            across.update({r: keep for r in rows})
    return exact, near, across


def _scores(
    inp: CleanInputs,
    cands: list[Candidate],
    known: dict[PairKey, float],
    s3_endpoint: str | None,
    max_pixels: int,
) -> tuple[list[float | None], list[PairKey | None]]:
    """The pixel score of each candidate (None: an image could not be read back or decoded)
    and its cache key (None: an image without SHA-256, only synthetic rows)."""
    sha = inp.images.column("sha256").to_pylist()
    lms = np.asarray(inp.faces.column("landmarks").combine_chunks().flatten(), np.float32)
    lms = lms.reshape(-1, 10)

    def side(image: int, faces: list[int]) -> bytes | None:
        if not sha[image]:
            return None
        return face_key(sha[image], lms[faces].reshape(-1) if faces[0] >= 0 else None)

    alternatives = [_alternatives(inp, c) for c in cands]
    keys: list[PairKey | None] = []
    for c, alt in zip(cands, alternatives, strict=True):
        a = side(c.ref, [c.ref_face, *(fa for fa, _ in alt)])
        b = side(c.other, [c.other_face, *(fb for _, fb in alt)])
        keys.append((a, b) if a is not None and b is not None else None)
    scores: list[float | None] = [known.get(k) if k is not None else None for k in keys]
    todo = [i for i, (k, s) in enumerate(zip(keys, scores, strict=True)) if k and s is None]
    alike = _photos_alike(inp, cands)
    started = last = time.monotonic()
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        pictures = _pictures(inp, {x for i in chunk for x in (cands[i].ref, cands[i].other)},
                             s3_endpoint, max_pixels)  # fmt: skip
        jobs = [(cands[i], alternatives[i], pictures, alike[i]) for i in chunk]
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            for i, score in zip(chunk, pool.map(lambda job: _score(job, lms), jobs), strict=True):
                scores[i] = score
        now, done = time.monotonic(), start + len(chunk)
        if now - last >= PROGRESS_S or done == len(todo):
            last, rate = now, done / max(now - started, 1e-9)
            progress.info(
                "clean: near duplicates %s/%s pairs compared, %.1f pairs/s, ETA %.0fs",
                f"{done:,}", f"{len(todo):,}", rate, (len(todo) - done) / rate,
            )  # fmt: skip
    return scores, keys


def _pictures(
    inp: CleanInputs, rows: set[int], s3_endpoint: str | None, max_pixels: int
) -> dict[int, Picture]:
    uris = inp.images.column("uri").to_pylist()
    data = fetch_bytes({uris[r] for r in rows}, s3_endpoint)
    out: dict[int, Picture] = {}
    for r in rows:
        raw = data.get(uris[r])
        dec = decode_image(raw, max_pixels, len(raw)) if raw is not None else None
        if dec is not None and dec.pixels is not None:
            out[r] = Picture.of(dec.pixels)
    return out


def _photos_alike(inp: CleanInputs, cands: list[Candidate]) -> np.ndarray:
    """(C,) whether each candidate's photo descriptors reach PHOTO_MIN (either orientation)."""
    if not cands:
        return np.zeros(0, bool)
    ref = np.array([c.ref for c in cands])
    other = np.array([c.other for c in cands])
    va, _ = as_vectors(inp.photo_desc[ref])
    vb, vb_mirror = as_vectors(inp.photo_desc[other])
    sims = np.maximum(np.einsum("nd,nd->n", va, vb), np.einsum("nd,nd->n", va, vb_mirror))
    return sims >= PHOTO_MIN


def _alternatives(inp: CleanInputs, c: Candidate) -> list[tuple[int, int]]:
    """Further face pairs of a face candidate's two images whose embeddings agree: each other
    face of the reference with its most similar face of the other image, best first."""
    if c.ref_face < 0 or c.other_face < 0:
        return []
    lo_a, hi_a = np.searchsorted(inp.face_image, [c.ref, c.ref + 1])
    lo_b, hi_b = np.searchsorted(inp.face_image, [c.other, c.other + 1])
    rows_a = [f for f in range(lo_a, hi_a) if f != c.ref_face]
    rows_b = [f for f in range(lo_b, hi_b) if f != c.other_face]
    if not rows_a or not rows_b:
        return []
    sims = inp.emb[rows_a] @ inp.emb[rows_b].T
    best = sims.argmax(axis=1)
    found = [(float(sims[i, j]), rows_a[i], rows_b[j]) for i, j in enumerate(best)]
    found = sorted((x for x in found if x[0] >= ALTERNATIVE_MIN_COSINE), reverse=True)
    return [(fa, fb) for _, fa, fb in found[:ALTERNATIVES]]


def _score(
    job: tuple[Candidate, list[tuple[int, int]], dict[int, Picture], bool], lms: np.ndarray
) -> float | None:
    c, alternatives, pictures, alike = job
    a, b = pictures.get(c.ref), pictures.get(c.other)
    if a is None or b is None:
        return None
    if c.ref_face < 0:
        return same_photo_score(a, photo_frame(a), b, None)
    best = -1.0
    for fa, fb in [(c.ref_face, c.other_face), *alternatives]:
        best = max(best, _face_pair(a, b, lms[fa], lms[fb] if fb >= 0 else None, alike))
        if best >= SURE:
            break
    return best


def _face_pair(
    a: Picture, b: Picture, lm_a: np.ndarray, lm_b: np.ndarray | None, alike: bool
) -> float:
    """The pixel score in the frame of one face of ``a``; a pair of faces that disagree at a
    coarse scale, in photos that look unalike, gets its coarse agreement instead."""
    frame = face_frame(lm_a)
    if lm_b is not None and not alike:
        coarse = coarse_agreement(a, frame, b, lm_b)
        if coarse < COARSE_MIN:
            return coarse
    return same_photo_score(a, frame, b, lm_b)
