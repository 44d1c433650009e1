"""Reading the kNN graph in groups gives the arrays of one read of every file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

import facesieve.cluster.graph as graph
from facesieve.index.knn import knn_file, knn_table
from facesieve.outputs import parquet_bytes
from facesieve.storage import LocalStore


def _write(store: LocalStore, rng: np.random.Generator, k: int) -> dict[str, tuple]:
    """Three graph files of random rows; face id -> (index id, neighbour ids, sims)."""
    rows: dict[str, tuple] = {}
    ids = rng.permutation(10_000)[:90].astype(np.int64) * 3 + 1
    for part, chunk in enumerate(np.array_split(ids, 3)):
        face_ids = [f"{rng.integers(1 << 60):015x}#0" for _ in chunk]
        nb = rng.choice(ids, (len(chunk), k))
        nb[rng.random(nb.shape) < 0.2] = -1
        nb[0, 0] = 999_999  # a neighbour that is not in the graph
        sims = rng.random(nb.shape).astype(np.float32)
        table = knn_table(pa.array(face_ids), chunk, nb, sims)
        store.write_bytes(knn_file(f"s{part}"), parquet_bytes(table))
        for f, i, n, s in zip(face_ids, chunk, nb, sims, strict=True):
            rows[f] = (i, n, s)
    return rows


def test_groups_of_files_read_as_one(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path)
    rows = _write(store, np.random.default_rng(5), 4)
    shards = ["s0", "s1", "s2"]
    whole = graph.load_graph(store, shards)
    monkeypatch.setattr(graph, "GROUP_ROWS", 1)  # every file its own group
    grouped = graph.load_graph(store, shards)
    for a, b in ((whole.neighbors, grouped.neighbors), (whole.ids, grouped.ids)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole.sims, grouped.sims)
    faces = whole.face_ids.to_pylist()
    assert faces == sorted(rows) and grouped.face_ids.to_pylist() == faces
    at = {rows[f][0]: r for r, f in enumerate(faces)}  # index id -> sorted row
    for r, f in enumerate(faces):
        index_id, nb, sims = rows[f]
        want = np.array([at.get(int(i), -1) for i in nb])
        assert whole.ids[r] == index_id
        np.testing.assert_array_equal(whole.neighbors[r], want)
        np.testing.assert_array_equal(np.isnan(whole.sims[r]), want < 0)
        np.testing.assert_array_equal(whole.sims[r][want >= 0], sims[want >= 0])
    assert (whole.neighbors == -1).any() and (whole.neighbors >= 0).any()
