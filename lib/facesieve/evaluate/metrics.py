"""Clustering and detection scores: BCubed and pairwise F, precision and recall per reason.

Noise points (cluster -1) count as singleton clusters, the usual convention: leaving a face
unclustered costs recall and never earns precision.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f: float

    @staticmethod
    def of(precision: float, recall: float) -> Scores:
        f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return Scores(round(precision, 4), round(recall, 4), round(f, 4))


def _singletons(clusters: np.ndarray) -> np.ndarray:
    """Give each noise point (-1) a cluster id of its own."""
    clusters = np.asarray(clusters, np.int64).copy()
    noise = clusters < 0
    clusters[noise] = clusters.max(initial=0) + 1 + np.arange(noise.sum())
    return clusters


def bcubed(truth: np.ndarray, clusters: np.ndarray) -> Scores:
    """BCubed precision/recall (Amigo et al. 2009), averaged over items, in O(n)."""
    truth = np.asarray(truth)
    clusters = _singletons(clusters)
    if len(truth) == 0:
        raise ValueError("bcubed needs at least one item")
    pair = Counter(zip(clusters.tolist(), truth.tolist(), strict=True))
    csize = Counter(clusters.tolist())
    tsize = Counter(truth.tolist())
    both = np.array([pair[(c, t)] for c, t in zip(clusters.tolist(), truth.tolist(), strict=True)])
    p = np.mean(both / np.array([csize[c] for c in clusters.tolist()]))
    r = np.mean(both / np.array([tsize[t] for t in truth.tolist()]))
    return Scores.of(float(p), float(r))


def pairwise(truth: np.ndarray, clusters: np.ndarray) -> Scores:
    """Precision/recall over all pairs of items placed together (Fowlkes-Mallows style counts)."""
    clusters = _singletons(clusters)
    pairs = lambda counts: sum(v * (v - 1) // 2 for v in counts.values())  # noqa: E731
    together = pairs(Counter(zip(clusters.tolist(), np.asarray(truth).tolist(), strict=True)))
    pred = pairs(Counter(clusters.tolist()))
    true = pairs(Counter(np.asarray(truth).tolist()))
    return Scores.of(together / pred if pred else 1.0, together / true if true else 1.0)


def detection(flagged: set[str], truth: set[str]) -> Scores:
    """Precision and recall of a set of flagged items against the known positives."""
    tp = len(flagged & truth)
    return Scores.of(tp / len(flagged) if flagged else 1.0, tp / len(truth) if truth else 1.0)
