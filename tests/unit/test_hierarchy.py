"""HDBSCAN on the kNN graph against the exact ``hdbscan`` library."""

from __future__ import annotations

import hdbscan
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from facesieve.cluster.hierarchy import (
    core_distances,
    hdbscan_knn,
    mutual_reachability_edges,
    single_linkage,
    spanning_tree,
)
from facesieve.devtools.synthetic import SphereModel, identities


def _knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    nb = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return nb, np.take_along_axis(s, nb, 1).astype(np.float32)


@pytest.mark.parametrize(("mcs", "ms"), [(3, 2), (5, 5)])
def test_agrees_with_exact_hdbscan_on_identities(mcs: int, ms: int) -> None:
    emb, _ = identities(SphereModel(noise=0.9, seed=3), 1200, mean_size=12)
    ref = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit(emb.astype(np.float64))
    nb, sims = _knn(emb.astype(np.float64), 32)
    got = hdbscan_knn(nb, sims, mcs, ms)
    assert ref.labels_.max() >= 20  # the data has structure to agree on
    assert adjusted_rand_score(ref.labels_, got.labels) >= 0.95
    assert got.probabilities.shape == (len(emb),)
    assert ((got.probabilities > 0) == (got.labels >= 0)).all()


def test_core_distance_is_the_min_samples_th_neighbour() -> None:
    dist = np.array([[0.1, 0.2, 0.3], [0.5, np.inf, np.inf]])
    np.testing.assert_allclose(core_distances(dist, 2), [0.2, 0.5])


def test_disconnected_parts_are_joined_above_every_edge() -> None:
    lo, hi, w = np.array([0, 2]), np.array([1, 3]), np.array([0.5, 0.7])
    tree, parts = spanning_tree(4, lo, hi, w)
    assert parts == 2
    assert tree.shape == (3, 3)
    assert tree[-1, 2] > 0.7  # the bridge comes last
    assert list(tree[:2, 2]) == [0.5, 0.7]


def test_separate_groups_become_separate_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.normal(size=(64, 4)))[0].T
    x = np.repeat(centres, 6, axis=0) + rng.normal(scale=0.05, size=(24, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    nb, sims = _knn(x, 5)  # 5 < group size: groups share no kNN edge
    got = hdbscan_knn(nb, sims, 3, 2)
    truth = np.repeat(np.arange(4), 6)
    assert got.components == 4
    assert adjusted_rand_score(truth, got.labels) == 1.0


def test_single_linkage_matches_the_hdbscan_routine() -> None:
    from hdbscan._hdbscan_linkage import label

    rng = np.random.default_rng(0)
    n = 500
    a, b, w = np.arange(1, n), rng.integers(0, np.arange(1, n)), rng.random(n - 1)
    mst = np.column_stack([a, b, w]).astype(np.float64)[np.argsort(w)]
    np.testing.assert_array_equal(single_linkage(mst), label(mst))


def test_identities_inside_disconnected_parts_are_not_merged() -> None:
    """Parts of the graph joined far above every edge used to win the selection whole (two
    Glint360K identities became one cluster); each part here holds two identities."""
    rng = np.random.default_rng(1)
    axes = np.linalg.qr(rng.normal(size=(128, 6)))[0].T  # 6 orthogonal directions
    x, truth = [], []
    for part in range(3):
        a, b = axes[2 * part], axes[2 * part + 1]
        for ident, centre in enumerate((a, 0.6 * a + 0.8 * b)):  # cos(a, centre) = 0.6
            x.append(centre + rng.normal(scale=0.05, size=(30, 128)))
            truth += [2 * part + ident] * 30
    x = np.concatenate(x)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    nb, sims = _knn(x, 40)  # reaches into the other identity of its part, never other parts
    got = hdbscan_knn(nb, sims, 5, 2)
    assert got.components == 3
    assert adjusted_rand_score(truth, got.labels) == 1.0


def reference(neighbors: np.ndarray, dist: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every directed edge, made undirected, kept at its first occurrence (np.unique)."""
    n, k = neighbors.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = neighbors.reshape(-1).astype(np.int64)
    d = dist.reshape(-1)
    ok = (cols >= 0) & np.isfinite(d) & (cols != rows)
    rows, cols, d = rows[ok], cols[ok], d[ok]
    w = np.maximum(np.maximum(core[rows], core[cols]), d)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    _, first = np.unique(lo * n + hi, return_index=True)
    return lo[first], hi[first], w[first]


@pytest.mark.parametrize("seed", range(8))
def test_edges_equal_the_sorted_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 200, 8
    neighbors = np.stack([rng.choice(n, k, replace=False) for _ in range(n)]).astype(np.int32)
    neighbors[rng.random((n, k)) < 0.1] = -1
    # asymmetric distances: which row an edge is taken from shows in its weight
    dist = rng.random((n, k))
    dist[(neighbors < 0) | (rng.random((n, k)) < 0.05)] = np.inf
    core = core_distances(np.sort(dist, axis=1), 4)
    got = mutual_reachability_edges(neighbors, dist, core)
    want = reference(neighbors, dist, core)
    assert len(want[0]) > n  # the graph has edges, many listed from both ends
    order_got, order_want = np.lexsort(got[1::-1]), np.lexsort(want[1::-1])
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a[order_got], b[order_want])


def test_edges_come_out_in_the_same_order_whatever_the_block(monkeypatch) -> None:
    """The spanning tree breaks equal weights by edge order: blocks must not change it."""
    import facesieve.cluster.hierarchy as hierarchy

    rng = np.random.default_rng(11)
    n, k = 300, 6
    neighbors = np.stack([rng.choice(n, k, replace=False) for _ in range(n)]).astype(np.int32)
    dist = np.sort(rng.random((n, k)), axis=1)
    core = core_distances(dist, 3)
    whole = mutual_reachability_edges(neighbors, dist, core)
    monkeypatch.setattr(hierarchy, "EDGE_BLOCK", 7)
    blocked = mutual_reachability_edges(neighbors, dist, core)
    assert len(whole[0]) > n
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_array_equal(a, b)
    assert whole[0].dtype == np.int32 and whole[2].dtype == np.float64
