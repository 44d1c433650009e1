"""Exact duplicates (same bytes) and near duplicates (the same photograph, transformed).

Exact: images sharing a SHA-256. Near: two images whose subject faces' embeddings agree
(>= near_dup_min_cosine, pairs taken from the kNN graph) *and* whose face-aligned context pixels
correlate (>= near_dup_min_pixel, ``clean.pixels``): the second test is what keeps two different
photos of one person from being called duplicates. Each group keeps its best copy (decodable,
most pixels, most bytes, then the smallest image_id so reruns agree); the others point to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from facesieve.clean.fetch import fetch_bytes
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.pixels import Patch, face_patches, same_photo_score
from facesieve.config import CleanConfig
from facesieve.faces.decode import decode_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Duplicates:
    exact: dict[int, int]  # image row -> image row finally kept in its place
    near: dict[int, tuple[int, float]]  # image row -> (kept image row, pixel score)
    candidates: int  # face pairs that reached the embedding threshold
    checked: int  # of those, pairs whose pixels could be compared


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


class _Groups:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = int(self.parent[a])
        return a

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def exact_duplicates(inp: CleanInputs, rank: np.ndarray) -> dict[int, int]:
    sha = inp.images.column("sha256").to_pylist()
    size = inp.images.column("bytes").to_pylist()
    groups: dict[str, list[int]] = {}
    for row, (h, n) in enumerate(zip(sha, size, strict=True)):
        if h and n:
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
) -> tuple[dict[int, tuple[int, float]], int, int]:
    """Near-duplicate images among those that are not already exact copies."""
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
    pairs = {(int(a), int(b)) for a, b in np.unique(np.stack([lo, hi], 1), axis=0)}
    if not pairs:
        return {}, 0, 0
    faces_needed = sorted({f for p in pairs for f in p})
    uris = inp.images.column("uri").to_pylist()
    data = fetch_bytes({uris[img_of[f]] for f in faces_needed}, s3_endpoint)
    lms = np.asarray(inp.faces.column("landmarks").combine_chunks().flatten(), np.float32)
    lms = lms.reshape(-1, 10)
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
    groups = _Groups(inp.n_images)
    best: dict[tuple[int, int], float] = {}
    checked = 0
    for fa, fb in sorted(pairs):
        if fa not in patches or fb not in patches:
            continue
        checked += 1
        score = same_photo_score(patches[fa], patches[fb])
        if score >= cfg.near_dup_min_pixel:
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
    return result, len(pairs), checked


def find_duplicates(
    inp: CleanInputs,
    usable: np.ndarray,
    cfg: CleanConfig,
    s3_endpoint: str | None,
    max_pixels: int,
) -> Duplicates:
    rank = _quality_order(inp)
    exact = exact_duplicates(inp, rank)
    near, candidates, checked = near_duplicates(
        inp, usable, rank, exact, cfg, s3_endpoint, max_pixels
    )
    # the kept byte copy may itself be a near duplicate: point at what is finally kept
    exact = {row: near[keep][0] if keep in near else keep for row, keep in exact.items()}
    log.info(
        "duplicates: %d exact, %d near (%d candidate face pairs, %d compared)",
        len(exact),
        len(near),
        candidates,
        checked,
    )
    return Duplicates(exact, near, candidates, checked)
