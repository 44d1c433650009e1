"""Read the kNN graph (``index/knn/<shard>.parquet``) into arrays, in a canonical row order.

Rows are sorted by face id, which does not depend on how files were grouped into shards: a
nightly run and a fresh run over the same input hand the clustering the same arrays, so they
find the same clusters. Neighbours are turned from index ids into row positions.

Memory: the result is 4 + 4 bytes per neighbour (int32 rows, float32 cosines), 256 bytes a face at
K = 32. The files are read twice, ids first and neighbours second, and neighbours are converted a
group of ``GROUP_ROWS`` rows at a time, so the int64 ids of every neighbour (2.5 GB at 10M faces)
are never in memory together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from facesieve.errors import ConfigError
from facesieve.index.knn import knn_file
from facesieve.outputs import read_parquets
from facesieve.storage.base import Store

GROUP_ROWS = 1 << 19  # rows whose neighbour ids are looked up at once (one hash of all ids each)


@dataclass(frozen=True)
class KnnGraph:
    face_ids: pa.Array  # (n,) sorted
    ids: np.ndarray  # (n,) index ids
    neighbors: np.ndarray  # (n, K) int32 row positions, -1 = none; best first
    sims: np.ndarray  # (n, K) float32 cosine, NaN = none

    def __len__(self) -> int:
        return len(self.neighbors)


def load_graph(out: Store, shard_ids: list[str]) -> KnnGraph:
    """The graph rows of the given faces shards (the index manifest's)."""
    if not shard_ids:
        raise ConfigError(f"no kNN graph under {out.root_uri}: run `facesieve index` first")
    keys = [knn_file(sid) for sid in sorted(shard_ids)]
    heads = list(read_parquets(out, keys, ["face_id", "id"]))
    face_ids = pa.chunked_array([t.column("face_id") for t in heads], pa.string()).combine_chunks()
    file_ids = pa.chunked_array([t.column("id") for t in heads], pa.int64()).combine_chunks()
    del heads
    order = pc.sort_indices(face_ids).to_numpy()
    rank = np.empty(len(order), np.int32)  # file row -> sorted row
    rank[order] = np.arange(len(order), dtype=np.int32)
    n = len(order)
    neighbors: np.ndarray | None = None
    sims: np.ndarray | None = None
    start = 0
    group: list[pa.Table] = []
    for table in read_parquets(out, keys, ["neighbor_ids", "neighbor_sims"]):
        if neighbors is None:
            k = table.schema.field("neighbor_ids").type.list_size
            neighbors = np.full((n, k), -1, np.int32)
            sims = np.full((n, k), np.nan, np.float32)
        group.append(table)
        if sum(t.num_rows for t in group) >= GROUP_ROWS:
            start = _fill(group, start, file_ids, rank, neighbors, sims)
            group = []
    if neighbors is None or sims is None:
        raise ConfigError(f"the kNN graph under {out.root_uri} is empty")
    if group:
        start = _fill(group, start, file_ids, rank, neighbors, sims)
    if start != n:  # a file rewritten between the two reads
        raise ConfigError(f"the kNN graph under {out.root_uri} changed while it was read")
    return KnnGraph(face_ids.take(pa.array(order)), file_ids.to_numpy()[order], neighbors, sims)


def _fill(
    group: list[pa.Table],
    start: int,
    file_ids: pa.Array,
    rank: np.ndarray,
    neighbors: np.ndarray,
    sims: np.ndarray,
) -> int:
    """Write a group of files' rows (file rows ``start``...) into the sorted arrays: neighbour
    ids become sorted rows with one hash lookup for the group (2.6x faster than bisecting
    sorted ids), then file by file, so temporaries stay one file's size."""
    k = neighbors.shape[1]
    flat = [t.column("neighbor_ids").combine_chunks().flatten() for t in group]
    found = pc.fill_null(pc.index_in(pa.chunked_array(flat), value_set=file_ids), -1)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    offset = 0
    for table in group:
        rows = table.num_rows
        at = found.slice(offset * k, rows * k).to_numpy(zero_copy_only=False)
        offset += rows
        mapped = np.where(at >= 0, rank[np.maximum(at, 0)], -1).reshape(rows, k)
        got = table.column("neighbor_sims").combine_chunks().flatten()
        got = got.to_numpy(zero_copy_only=False).reshape(rows, k)
        dest = rank[start : start + rows]
        neighbors[dest] = mapped
        sims[dest] = np.where(mapped >= 0, got, np.nan)
        start += rows
    return start
