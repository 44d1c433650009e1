"""Which image pairs might be the same photograph: the pairs ``clean.pixels`` then checks.

Two sources, because each misses what the other finds:
- **faces**: the kNN graph's face pairs whose embeddings agree (``near_dup_min_cosine``). Robust
  to crops, padding, rotation, captions and colour, which keep the face; blind to photos without
  a usable face and to blur that moves the embedding.
- **photos**: each image's nearest neighbours by the whole-photo descriptor (``faces.photo``),
  mirror images included, at ``photo_dup_min_similarity``, or ``photo_dup_min_similarity_no_face``
  when either image has no usable face (the only evidence there is). Robust to blur, colour and
  padding, weaker under crops.

A candidate names the reference image and the compared one, with the face each is framed by
(-1: the whole photo). The reference is the image that sorts first by id, unless only the other
has a usable face: pixels are compared in the frame of a face when there is one. Candidates cost
O(K) per image either way, never the square of the number of images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from facesieve.clean.inputs import GRAPH_BLOCK, CleanInputs
from facesieve.config import CleanConfig
from facesieve.faces.photo import as_vectors

log = logging.getLogger(__name__)

PHOTO_NEIGHBOURS = 5  # descriptor neighbours per image
EXACT_SEARCH_BELOW = 50_000  # images; above, an IVF search (FAISS) keeps the cost linear
PHOTO_BLOCK = 1 << 16  # photos whose descriptor vectors are made at a time


@dataclass(frozen=True)
class Candidate:
    ref: int  # image row compared against
    other: int  # image row compared
    ref_face: int  # face row framing the reference, -1 = the whole photo
    other_face: int  # face row whose landmarks register ``other``, -1 = none


def face_candidates(
    inp: CleanInputs, faces: np.ndarray, canon: np.ndarray, min_cosine: float
) -> dict[tuple[int, int], tuple[int, int, float]]:
    """(image, image) -> (face, face, cosine) of the best face pair from the kNN graph; only
    faces where ``faces`` is True, images in different exact-copy groups (``canon``)."""
    best: dict[tuple[int, int], tuple[int, int, float]] = {}
    for start in range(0, len(inp.neighbors), GRAPH_BLOCK):  # no (F*K,) temporaries
        nb = inp.neighbors[start : start + GRAPH_BLOCK]
        src = np.repeat(np.arange(start, start + len(nb)), nb.shape[1])
        dst = nb.reshape(-1)
        sims = np.nan_to_num(inp.sims[start : start + GRAPH_BLOCK].reshape(-1), nan=-1.0)
        keep = (dst >= 0) & (sims >= min_cosine)
        src, dst, sims = src[keep], dst[keep], sims[keep]
        keep = faces[src] & faces[dst]
        src, dst, sims = src[keep], dst[keep], sims[keep]
        img_a, img_b = canon[inp.face_image[src]], canon[inp.face_image[dst]]
        keep = img_a != img_b
        for fa, fb, ia, ib, s in zip(
            src[keep].tolist(), dst[keep].tolist(), img_a[keep].tolist(), img_b[keep].tolist(),
            sims[keep].tolist(), strict=True,
        ):  # fmt: skip
            key, faces_ = ((ia, ib), (fa, fb)) if ia < ib else ((ib, ia), (fb, fa))
            if key not in best or s > best[key][2]:
                best[key] = (*faces_, s)
    return best


def photo_candidates(
    inp: CleanInputs, has_face: np.ndarray, canon: np.ndarray, cfg: CleanConfig
) -> set[tuple[int, int]]:
    """(image, image) pairs, lower row first, whose photo descriptors are near neighbours."""
    desc = inp.photo_desc
    rows = np.flatnonzero(desc.any(axis=1) & (canon == np.arange(inp.n_images)))
    if len(rows) < 2:
        return set()
    index = _photo_index(desc, rows)
    k = min(PHOTO_NEIGHBOURS + 1, len(rows))
    found: set[tuple[int, int]] = set()
    for start in range(0, len(rows), PHOTO_BLOCK):  # vectors of one block in RAM at a time
        block = np.arange(start, min(start + PHOTO_BLOCK, len(rows)))
        vec, mirror = as_vectors(desc[rows[block]])
        sims, nbrs = index.search(np.concatenate([vec, mirror]), k)  # photos and mirror images
        q = np.concatenate([block, block])
        q, nb, s = np.repeat(q, k), nbrs.reshape(-1), sims.reshape(-1)
        ok = (nb >= 0) & (nb != q)
        q, nb, s = rows[q[ok]], rows[nb[ok]], s[ok]
        need = np.where(has_face[q] & has_face[nb], cfg.photo_dup_min_similarity,
                        cfg.photo_dup_min_similarity_no_face)  # fmt: skip
        q, nb = q[s >= need], nb[s >= need]
        found.update(zip(np.minimum(q, nb).tolist(), np.maximum(q, nb).tolist(), strict=True))
    return found


def _photo_index(desc: np.ndarray, rows: np.ndarray) -> Any:
    """An inner-product index of the descriptor vectors of ``rows`` (ids 0..len-1): exact below
    EXACT_SEARCH_BELOW rows, else IVF (nlist 4 sqrt N, 16 lists probed). Filled a block at a
    time; the index's own copy (512 bytes a photo) is what stays in RAM."""
    import faiss

    dim = desc.shape[1]
    if len(rows) < EXACT_SEARCH_BELOW:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(len(rows)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(len(rows), min(len(rows), 64 * nlist), False)
        index.train(as_vectors(desc[rows[np.sort(sample)]])[0])
        index.nprobe = 16
    for start in range(0, len(rows), PHOTO_BLOCK):
        index.add(as_vectors(desc[rows[start : start + PHOTO_BLOCK]])[0])
    return index


def candidates(
    inp: CleanInputs,
    faces: np.ndarray,
    reference_face: np.ndarray,
    canon: np.ndarray,
    cfg: CleanConfig,
) -> list[Candidate]:
    """Every pair to check, sorted. ``faces``: face rows whose embeddings may propose pairs;
    ``reference_face``: per image, the usable face that frames it (-1 none; one of ``faces``
    otherwise); ``canon``: per image, the image kept for its exact-copy group."""
    by_face = face_candidates(inp, faces, canon, cfg.near_dup_min_cosine)
    by_photo = photo_candidates(inp, reference_face >= 0, canon, cfg)
    found = [Candidate(a, b, fa, fb) for (a, b), (fa, fb, _) in by_face.items()]
    for a, b in sorted(by_photo - set(by_face)):
        fa, fb = int(reference_face[a]), int(reference_face[b])
        if fa < 0 and fb >= 0:
            a, b, fa, fb = b, a, fb, fa
        if fa >= 0 and fb >= 0:  # register by the face of ``b`` most like the reference face
            fb = _closest_face(inp, faces, fa, b)
        found.append(Candidate(a, b, fa, fb))
    log.info(
        "near-duplicate candidates: %d image pairs from faces, %d more from photo descriptors",
        len(by_face),
        len(found) - len(by_face),
    )
    return sorted(found, key=lambda c: (c.ref, c.other))


def _closest_face(inp: CleanInputs, allowed: np.ndarray, face: int, image: int) -> int:
    """The allowed face of ``image`` most similar to ``face`` (faces of one image are
    contiguous: faces sort by face id, which starts with the image id)."""
    lo, hi = np.searchsorted(inp.face_image, [image, image + 1])
    rows = np.arange(lo, hi)[allowed[lo:hi]]
    return int(rows[np.argmax(inp.emb[rows] @ inp.emb[face])])
