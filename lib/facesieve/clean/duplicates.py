"""Exact duplicates (same bytes) and near duplicates (the same photograph, transformed).

Exact: decodable images (status ``ok`` or ``no_face``) sharing a SHA-256; broken files that
share bytes (truncated copies of one file) are each a decode error, not copies of a photo.
Near: two images whose subject faces' embeddings agree (>= near_dup_min_cosine, pairs taken
from the kNN graph) *and* whose face-aligned context pixels correlate (>= near_dup_min_pixel,
``clean.pixels``): the second test is what keeps two different photos of one person from being
called duplicates. Each group keeps its best copy (decodable, most pixels, most bytes, then the
smallest image_id so reruns agree); the others point to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from facesieve import schema
from facesieve.clean.fetch import fetch_bytes
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.pixel_cache import PairKey, face_key, pair_key
from facesieve.clean.pixels import Patch, face_patches, same_photo_score
from facesieve.clean.unionfind import UnionFind
from facesieve.config import CleanConfig
from facesieve.faces.decode import decode_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Duplicates:
    exact: dict[int, int]  # image row -> image row finally kept in its place
    near: dict[int, tuple[int, float]]  # image row -> (kept image row, pixel score)
    candidates: int  # face pairs that reached the embedding threshold
    checked: int  # of those, pairs whose pixels could be compared
    reused: int  # of those, pairs scored by an earlier report (``clean.pixel_cache``)
    scores: dict[PairKey, float]  # the pixel score of every compared pair, to keep


@dataclass(frozen=True)
class NearDuplicates:
    near: dict[int, tuple[int, float]]  # image row -> (kept image row, pixel score)
    candidates: int
    scores: dict[PairKey, float]
    reused: int


def _quality_order(inp: CleanInputs) -> np.ndarray:
    """Rank of each image as the copy to keep: 0 = best."""
    img = inp.images
    ok = np.array([s == "ok" for s in img.column("status").to_pylist()])
    w = np.nan_to_num(img.column("width").to_numpy(zero_copy_only=False).astype(float))
    h = np.nan_to_num(img.column("height").to_numpy(zero_copy_only=False).astype(float))
    size = img.column("bytes").to_numpy(zero_copy_only=False).astype(float)
    ids = np.array(img.column("image_id").to_pylist())
    order = np.lexsort((ids, -size, -(w * h), ~ok))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank


def exact_duplicates(inp: CleanInputs, rank: np.ndarray) -> dict[int, int]:
    """Image row -> the row kept in its place, for decodable images with the same bytes."""
    sha = inp.images.column("sha256").to_pylist()
    size = inp.images.column("bytes").to_pylist()
    status = inp.images.column("status").to_pylist()
    groups: dict[str, list[int]] = {}
    for row, (h, n, st) in enumerate(zip(sha, size, status, strict=True)):
        if h and n and st in schema.DECODED:
            groups.setdefault(h, []).append(row)
    result: dict[int, int] = {}
    for rows in groups.values():
        if len(rows) > 1:
            keep = min(rows, key=lambda r: rank[r])
            result.update({r: keep for r in rows if r != keep})
    return result


def near_duplicates(
    inp: CleanInputs,
    usable: np.ndarray,
    rank: np.ndarray,
    exact: dict[int, int],
    cfg: CleanConfig,
    s3_endpoint: str | None,
    max_pixels: int,
    known: dict[PairKey, float],
) -> NearDuplicates:
    """Near-duplicate images among those that are not already exact copies; pairs whose score
    is ``known`` are not read again."""
    img_of = inp.face_image
    n, k = inp.neighbors.shape
    src = np.repeat(np.arange(n), k)
    dst = inp.neighbors.reshape(-1)
    sims = np.nan_to_num(inp.sims.reshape(-1), nan=-1.0)
    keep = (dst >= 0) & (sims >= cfg.near_dup_min_cosine)
    src, dst = src[keep], dst[keep]
    keep = usable[src] & usable[dst]
    src, dst = src[keep], dst[keep]
    canon = np.arange(inp.n_images)
    for a, b in exact.items():
        canon[a] = b
    keep = canon[img_of[src]] != canon[img_of[dst]]
    lo, hi = np.minimum(src[keep], dst[keep]), np.maximum(src[keep], dst[keep])
    pairs = sorted({(int(a), int(b)) for a, b in np.unique(np.stack([lo, hi], 1), axis=0)})
    if not pairs:
        return NearDuplicates({}, 0, {}, 0)
    lms = np.asarray(inp.faces.column("landmarks").combine_chunks().flatten(), np.float32)
    lms = lms.reshape(-1, 10)
    sha = inp.images.column("sha256").to_pylist()
    # faces of an image without a SHA-256 (only synthetic rows) have no key and are never kept
    keys = {f: face_key(sha[img_of[f]], lms[f]) for f in {f for p in pairs for f in p}
            if sha[img_of[f]]}  # fmt: skip
    scores = {p: _known(known, keys, p) for p in pairs}
    reused = sum(s is not None for s in scores.values())
    unknown = [p for p, s in scores.items() if s is None]
    scores.update(_pixel_scores(inp, unknown, lms, s3_endpoint, max_pixels))
    groups = UnionFind(inp.n_images)
    best: dict[tuple[int, int], float] = {}
    for (fa, fb), score in scores.items():
        if score is not None and score >= cfg.near_dup_min_pixel:
            a, b = int(canon[img_of[fa]]), int(canon[img_of[fb]])
            groups.union(a, b)
            key = (min(a, b), max(a, b))
            best[key] = max(best.get(key, -1.0), score)
    members: dict[int, set[int]] = {}
    score_of: dict[int, float] = {}
    for (a, b), sc in best.items():
        for x in (a, b):
            members.setdefault(groups.find(x), set()).add(x)
            score_of[x] = max(score_of.get(x, -1.0), sc)
    result: dict[int, tuple[int, float]] = {}
    for rows_ in members.values():
        keep_row = min(rows_, key=lambda r: rank[r])
        result.update({r: (keep_row, score_of[r]) for r in rows_ if r != keep_row})
    kept = {
        pair_key(keys[fa], keys[fb]): s
        for (fa, fb), s in scores.items()
        if s is not None and fa in keys and fb in keys
    }
    return NearDuplicates(result, len(pairs), kept, reused)


def _known(
    known: dict[PairKey, float], keys: dict[int, bytes], pair: tuple[int, int]
) -> float | None:
    a, b = keys.get(pair[0]), keys.get(pair[1])
    return known.get(pair_key(a, b)) if a is not None and b is not None else None


def _pixel_scores(
    inp: CleanInputs,
    pairs: list[tuple[int, int]],
    lms: np.ndarray,
    s3_endpoint: str | None,
    max_pixels: int,
) -> dict[tuple[int, int], float | None]:
    """Pixel score of each face pair, reading and decoding each image once; None where either
    image cannot be read back or decoded."""
    img_of = inp.face_image
    faces_needed = sorted({f for p in pairs for f in p})
    uris = inp.images.column("uri").to_pylist()
    data = fetch_bytes({uris[img_of[f]] for f in faces_needed}, s3_endpoint)
    patches: dict[int, tuple[Patch, Patch]] = {}
    decoded: dict[int, np.ndarray | None] = {}
    for f in faces_needed:
        i = int(img_of[f])
        if i not in decoded:
            raw = data.get(uris[i])
            d = decode_image(raw, max_pixels, len(raw)) if raw is not None else None
            decoded[i] = d.pixels if d is not None and d.pixels is not None else None
        if decoded[i] is not None:
            patches[f] = face_patches(decoded[i], lms[f])
    return {
        (fa, fb): same_photo_score(patches[fa], patches[fb])
        if fa in patches and fb in patches
        else None
        for fa, fb in pairs
    }


def find_duplicates(
    inp: CleanInputs,
    usable: np.ndarray,
    cfg: CleanConfig,
    s3_endpoint: str | None,
    max_pixels: int,
    known: dict[PairKey, float] | None = None,
) -> Duplicates:
    """Exact and near duplicates; ``known`` holds pixel scores kept from an earlier report."""
    rank = _quality_order(inp)
    exact = exact_duplicates(inp, rank)
    found = near_duplicates(inp, usable, rank, exact, cfg, s3_endpoint, max_pixels, known or {})
    near = found.near
    # the kept byte copy may itself be a near duplicate: point at what is finally kept
    exact = {row: near[keep][0] if keep in near else keep for row, keep in exact.items()}
    log.info(
        "duplicates: %d exact, %d near (%d candidate face pairs, %d compared, %d of them earlier)",
        len(exact),
        len(near),
        found.candidates,
        len(found.scores),
        found.reused,
    )
    return Duplicates(exact, near, found.candidates, len(found.scores), found.reused, found.scores)
