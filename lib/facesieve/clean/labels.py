"""Label evidence: each label's identity, and the faces or labels that disagree with it.

A label's identity is its dominant cluster: the HDBSCAN cluster holding most of its subject faces
(at least 2 and at least ``identity_min_share``, 30%, of them). Labels too small to own a cluster
fall back to the faces that agree with their mean (cosine >= ``identity_fallback_cosine``). The
identity's centroid is the mean of its member faces; a member is compared with the centroid of
the *other* members (leave-one-out), so small labels do not vouch for themselves.

Rules (thresholds in ``CleanConfig``, explained in docs/CLEANING.md):
- ``mislabeled``: the face matches another label's identity (>= mislabel_min_cosine) and not its
  own (<= mislabel_max_own), by a margin; that label is suggested. Candidate labels come from the
  face's cluster and its kNN neighbours, so the check scales with the graph, not with labels.
- ``outlier``: not mislabeled, and its own identity does not support it (< outlier_max_own,
  less for small faces: ``outlier_threshold``).
- ``label_has_multiple_identities``: a second cluster inside the label, owned by the label (no
  other label claims it), with enough faces and a centroid unlike the first identity's.
- ``identity_split_across_labels``: two labels whose identity members are kNN neighbours (cosine
  >= split_edge_min_cosine) and whose identity centroids are closer than split_min_cosine: the
  smaller label's images are flagged with the larger label suggested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesieve.clean.embeddings import EmbeddingRows
from facesieve.clean.inputs import CleanInputs
from facesieve.clean.unionfind import UnionFind
from facesieve.config import CleanConfig

# Defaults of clean.identity_min_share and clean.identity_fallback_cosine (for callers without a
# config). clean.split_edge_min_cosine (0.3): a face pair this similar is probably one person
# (LFW's verification threshold is 0.225), so two labels of one person share such kNN edges.
DOMINANT_SHARE = CleanConfig.identity_min_share
FALLBACK_COSINE = CleanConfig.identity_fallback_cosine
CHUNK = 2048


@dataclass
class Identities:
    dominant: np.ndarray  # (L,) cluster id of each label's identity, -1 none
    member: np.ndarray  # (F,) bool: face is one of its label identity's members
    sums: np.ndarray  # (L, 512) sum of member embeddings
    counts: np.ndarray  # (L,) members
    centroids: np.ndarray  # (L, 512) unit mean of members (zero where none)
    owner: dict[int, int]  # cluster id -> label code with most subject faces in it


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(n > 0, x / np.maximum(n, 1e-12), 0.0).astype(np.float32)


def label_sums(
    labels: np.ndarray, rows: np.ndarray, emb: EmbeddingRows | np.ndarray, n: int
) -> np.ndarray:
    """(n, 512) float64: per label code, the sum of ``emb[rows]`` of its faces.

    A sparse indicator matrix times the embeddings, in chunks: ``np.add.at`` did the same in
    62 of clean's 214 s at a million faces (it adds one row at a time).
    """
    from scipy.sparse import csr_matrix

    out = np.zeros((n, emb.shape[1]), np.float64)
    step = 1 << 16
    for s in range(0, len(rows), step):
        used, lab = np.unique(labels[s : s + step], return_inverse=True)
        pick = csr_matrix(
            (np.ones(len(lab)), (lab, np.arange(len(lab)))), shape=(len(used), len(lab))
        )
        out[used] += pick @ emb[rows[s : s + step]].astype(np.float64)
    return out


def build_identities(
    inp: CleanInputs,
    subject_rows: np.ndarray,
    face_label: np.ndarray,
    n_labels: int,
    min_share: float = DOMINANT_SHARE,
    fallback_cosine: float = FALLBACK_COSINE,
) -> Identities:
    """Identities of every label from its subject faces (``subject_rows``: usable, labeled);
    ``min_share`` and ``fallback_cosine`` are clean.identity_min_share / _fallback_cosine."""
    lab = face_label[subject_rows]
    clu = inp.cluster[subject_rows]
    per_label = np.bincount(lab, minlength=n_labels)
    dominant = np.full(n_labels, -1, np.int64)
    owner: dict[int, int] = {}
    inc = clu >= 0
    if inc.any():
        pairs, counts = np.unique(np.stack([lab[inc], clu[inc]], 1), axis=0, return_counts=True)
        # dominant cluster per label: most faces (ties: lowest cluster id)
        order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
        p, c = pairs[order], counts[order]
        first = np.ones(len(p), bool)
        first[1:] = p[1:, 0] != p[:-1, 0]
        ok = first & (c >= 2) & (c >= min_share * per_label[p[:, 0]])
        dominant[p[ok, 0]] = p[ok, 1]
        # owner per cluster: label with most faces (ties: lowest label code)
        order = np.lexsort((pairs[:, 0], -counts, pairs[:, 1]))
        p = pairs[order]
        first = np.ones(len(p), bool)
        first[1:] = p[1:, 1] != p[:-1, 1]
        owner = {int(cl): int(lb) for lb, cl in p[first]}
    member_s = (clu >= 0) & (clu == dominant[lab])
    # labels without a dominant cluster: the faces that agree with the label mean
    fallback = dominant[lab] < 0
    if fallback.any():
        sums = label_sums(lab[fallback], subject_rows[fallback], inp.emb, n_labels)
        fb_rows, fb_lab = subject_rows[fallback], lab[fallback]
        cents = _unit(sums)
        cos = np.concatenate(
            [
                np.einsum("fd,fd->f", inp.emb[fb_rows[c]], cents[fb_lab[c]])
                for c in np.array_split(np.arange(len(fb_rows)), max(1, len(fb_rows) // 4096))
            ]
        )
        agree = cos >= fallback_cosine
        enough = np.bincount(lab[fallback][agree], minlength=n_labels) >= 2
        member_s[np.flatnonzero(fallback)[agree & enough[lab[fallback]]]] = True
    member = np.zeros(len(inp.face_image), bool)
    member[subject_rows[member_s]] = True
    sums = label_sums(lab[member_s], subject_rows[member_s], inp.emb, n_labels)
    counts = np.bincount(lab[member_s], minlength=n_labels)
    return Identities(dominant, member, sums, counts, _unit(sums), owner)


def own_similarity(
    inp: CleanInputs, ids: Identities, rows: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Cosine of each face with its label's identity, leaving the face itself out; NaN if none.

    In chunks: a (faces x 512) gather of centroids would take 4 GB at a million faces.
    """
    out = np.full(len(rows), np.nan, np.float32)
    for s in range(0, len(rows), CHUNK):
        r, lab = rows[s : s + CHUNK], labels[s : s + CHUNK]
        sums = ids.sums[lab].copy()
        mem = ids.member[r]
        sums[mem] -= inp.emb[r[mem]]
        counts = ids.counts[lab].astype(np.int64) - mem
        sims = np.einsum("fd,fd->f", inp.emb[r], _unit(sums))
        out[s : s + CHUNK] = np.where(counts >= 1, sims, np.nan)
    return out


def best_other_label(
    inp: CleanInputs,
    ids: Identities,
    rows: np.ndarray,
    labels: np.ndarray,
    face_label: np.ndarray,
    is_subject: np.ndarray,
    min_cosine: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(label code, cosine) of the best other identity for each face; (-1, NaN) if none.

    Candidates: the owner of the face's cluster and the labels of its kNN neighbours that are
    subjects of their images and at least ``min_cosine`` similar. Only labels whose identity has
    2+ members can be suggested.
    """
    best_lab = np.full(len(rows), -1, np.int64)
    best_sim = np.full(len(rows), np.nan, np.float32)
    owner = np.full(int(inp.cluster.max(initial=-1)) + 2, -1, np.int64)
    for c, lb in ids.owner.items():
        owner[c] = lb
    for s in range(0, len(rows), CHUNK):
        r, lab = rows[s : s + CHUNK], labels[s : s + CHUNK]
        nb = inp.neighbors[r]
        ok = (nb >= 0) & (np.nan_to_num(inp.sims[r], nan=-1.0) >= min_cosine)
        ok &= is_subject[np.maximum(nb, 0)]
        cand = np.where(ok, face_label[np.maximum(nb, 0)], -1)
        cand = np.concatenate([cand, owner[inp.cluster[r]][:, None]], axis=1)
        cand = np.where((cand >= 0) & (cand != lab[:, None]), cand, -1)
        cand = np.where(ids.counts[np.maximum(cand, 0)] >= 2, cand, -1)
        # only the (face, label) candidates that exist: most faces have none, and gathering a
        # centroid for every column was 17 of clean's 123 s at a million faces
        at, col = np.nonzero(cand >= 0)
        if not len(at):
            continue
        got = cand[at, col]
        sims = np.einsum("pd,pd->p", inp.emb[r[at]], ids.centroids[got])
        order = np.lexsort((col, -sims, at))  # per face: best first, ties by column
        first = np.ones(len(order), bool)
        first[1:] = at[order][1:] != at[order][:-1]
        pick = order[first]
        best_lab[s + at[pick]] = got[pick]
        best_sim[s + at[pick]] = sims[pick]
    return best_lab, best_sim


@dataclass(frozen=True)
class LabelFlags:
    mislabeled: np.ndarray  # (n,) bool over the evaluated rows
    suggested: np.ndarray  # (n,) label code, -1 none
    outlier: np.ndarray  # (n,) bool


def outlier_threshold(cfg: CleanConfig, face_px: np.ndarray) -> np.ndarray:
    """Per face, the own-identity cosine below which it is an outlier.

    Small faces are weaker evidence: their embeddings wander (strangers' faces under 40 px
    reach cosine 0.33, ../shared/ENVIRONMENT.md), so a right label scores lower with its own
    identity. The threshold rises linearly from ``outlier_max_own - outlier_small_face_discount`` at
    ``min_face_px`` to ``outlier_max_own`` at ``outlier_full_face_px`` and above.
    """
    lo, hi = cfg.min_face_px, max(cfg.outlier_full_face_px, cfg.min_face_px + 1)
    ramp = np.clip((np.asarray(face_px, np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return cfg.outlier_max_own - cfg.outlier_small_face_discount * (1.0 - ramp)


def face_flags(
    cfg: CleanConfig,
    own: np.ndarray,
    other_lab: np.ndarray,
    other_sim: np.ndarray,
    face_px: np.ndarray,
) -> LabelFlags:
    own0 = np.nan_to_num(own, nan=0.0)
    has_other = other_lab >= 0
    mis = (
        has_other
        & (np.nan_to_num(other_sim, nan=-1.0) >= cfg.mislabel_min_cosine)
        & (np.isnan(own) | (own <= cfg.mislabel_max_own))
        & (np.nan_to_num(other_sim, nan=-1.0) - own0 >= cfg.mislabel_margin)
    )
    out = ~mis & ~np.isnan(own) & (own < outlier_threshold(cfg, face_px))
    return LabelFlags(mis, np.where(mis, other_lab, -1), out)


def multiple_identities(
    inp: CleanInputs,
    ids: Identities,
    subject_rows: np.ndarray,
    face_label: np.ndarray,
    cfg: CleanConfig,
) -> dict[int, float]:
    """Subject faces in a label's second identity: face row -> cosine between the identities."""
    lab, clu = face_label[subject_rows], inp.cluster[subject_rows]
    sel = (clu >= 0) & (clu != ids.dominant[lab]) & (ids.dominant[lab] >= 0)
    flagged: dict[int, float] = {}
    if not sel.any():
        return flagged
    pairs, counts = np.unique(np.stack([lab[sel], clu[sel]], 1), axis=0, return_counts=True)
    for (lb, cl), n in zip(pairs, counts, strict=True):
        if n < cfg.multi_min_faces or ids.owner.get(int(cl)) != int(lb):
            continue
        rows = subject_rows[sel][(lab[sel] == lb) & (clu[sel] == cl)]
        centre = _unit(inp.emb[rows].sum(0))
        cos = float(centre @ ids.centroids[lb])
        if cos < cfg.multi_max_cosine:
            flagged.update({int(r): cos for r in rows})
    return flagged


def split_labels(
    inp: CleanInputs, ids: Identities, face_label: np.ndarray, cfg: CleanConfig
) -> dict[int, tuple[int, float]]:
    """Labels that are another label's identity: label code -> (main label code, cosine).

    Candidate pairs are labels with a kNN edge of at least ``split_edge_min_cosine`` between their
    identity members, so the check scales with the graph, not with the square of the number of
    labels (all pairs of 50k labels took 16 s, and grows 100x for ten times the labels). Two
    labels of one person have such edges: their faces are each other's nearest.
    """
    eligible = ids.counts >= cfg.split_min_faces
    if eligible.sum() < 2:
        return {}
    n_labels = len(ids.counts)
    found: list[np.ndarray] = []
    members = np.flatnonzero(ids.member)
    for s in range(0, len(members), CHUNK * 16):
        r = members[s : s + CHUNK * 16]
        nb = inp.neighbors[r]
        ok = (nb >= 0) & ids.member[np.maximum(nb, 0)]
        ok &= np.nan_to_num(inp.sims[r], nan=-1.0) >= cfg.split_edge_min_cosine
        a = np.broadcast_to(face_label[r][:, None], nb.shape)[ok]
        b = face_label[np.maximum(nb, 0)][ok]
        keep = (a != b) & eligible[a] & eligible[b]
        lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        found.append(lo * n_labels + hi)
    codes = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
    lo, hi = codes // n_labels, codes % n_labels
    cos = np.empty(len(codes), np.float32)
    step = 1 << 16  # small gathers: one (pairs x 512) gather of 1.3M pairs took 12 s, these 1.3
    for s in range(0, len(codes), step):
        pick = slice(s, s + step)
        cos[pick] = np.einsum("pd,pd->p", ids.centroids[lo[pick]], ids.centroids[hi[pick]])
    close = cos >= cfg.split_min_cosine
    lo, hi = lo[close], hi[close]
    sets = UnionFind(n_labels)
    for x, y in zip(lo.tolist(), hi.tolist(), strict=True):
        sets.union(x, y)
    groups: dict[int, list[int]] = {}
    for x in sorted(set(lo.tolist()) | set(hi.tolist())):
        groups.setdefault(sets.find(x), []).append(x)
    result: dict[int, tuple[int, float]] = {}
    for group in groups.values():
        main = max(group, key=lambda x: (ids.counts[x], -x))
        for x in group:
            if x != main:
                result[x] = (main, float(ids.centroids[x] @ ids.centroids[main]))
    return result
