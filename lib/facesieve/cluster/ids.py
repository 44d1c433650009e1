"""Stable cluster ids: a cluster keeps its id across nightly runs while it is the same people.

Each run clusters every face again (HDBSCAN is global); the new clusters then inherit the ids of
the previous run's clusters by overlap, like a nightly person matcher would:

1. Pairs (new cluster, old id) are ranked by how many faces they share (faces present in both
   runs), most first; ties go to the older (smaller) id, then to the cluster whose smallest
   face id sorts first. Each pair is taken when neither side is taken yet.
2. So an unchanged cluster keeps its id; a grown or shrunk one keeps it; when two clusters
   merge, the merged cluster keeps the id that brought most faces (the other id is retired, or
   goes to what remains of its cluster); when a cluster splits, its largest part keeps the id.
3. Every other cluster gets a new id: the largest id ever issued plus one, in the order of the
   clusters' smallest face ids. Retired ids are never issued again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IdChanges:
    kept: int  # clusters with the same id and the same faces as before
    inherited: int  # clusters that kept an id while gaining or losing faces
    new: int  # clusters with a new id
    retired: int  # previous ids no cluster holds any more

    def as_dict(self) -> dict[str, int]:
        return {
            "kept": self.kept,
            "inherited": self.inherited,
            "new": self.new,
            "retired": self.retired,
        }


def stable_ids(
    labels: np.ndarray, previous: np.ndarray, old_sizes: dict[int, int], next_id: int
) -> tuple[np.ndarray, int, IdChanges]:
    """Stable ids for this run's ``labels`` (n,) (-1 noise; rows sorted by face id).

    ``previous`` (n,) is each face's id in the previous run (-1: noise or a new face),
    ``old_sizes`` the previous clusters' sizes, ``next_id`` the first id never issued.
    Returns (ids, next_id, what happened). Linear in the number of faces.
    """
    clusters, first, sizes = np.unique(labels[labels >= 0], return_index=True, return_counts=True)
    first = np.flatnonzero(labels >= 0)[first]  # each cluster's first row = smallest face id
    if not len(clusters):
        return np.full(len(labels), -1, np.int64), next_id, IdChanges(0, 0, 0, len(old_sizes))
    at = {int(c): i for i, c in enumerate(clusters)}
    both = (labels >= 0) & (previous >= 0)
    pairs, counts = np.unique(
        np.stack([labels[both], previous[both]], 1), axis=0, return_counts=True
    )
    ranked = sorted(
        zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), counts.tolist(), strict=True),
        key=lambda p: (-p[2], p[1], first[at[p[0]]]),
    )
    owner: dict[int, int] = {}
    shared: dict[int, int] = {}
    for new, old, count in ranked:
        if new not in owner and old not in shared:
            owner[new], shared[old] = old, count
    kept = sum(1 for c, o in owner.items() if shared[o] == sizes[at[c]] == old_sizes.get(o, -1))
    inherited = len(owner) - kept
    for i in np.argsort(first, kind="stable"):  # new ids in the order of smallest face ids
        if int(clusters[i]) not in owner:
            owner[int(clusters[i])] = next_id
            next_id += 1
    lookup = np.full(int(clusters.max()) + 2, -1, np.int64)
    for c, cid in owner.items():
        lookup[c] = cid
    ids = lookup[labels]  # noise (-1) reads the last slot, which stays -1
    retired = len(set(old_sizes) - set(shared))
    return ids, next_id, IdChanges(kept, inherited, len(clusters) - len(shared), retired)
