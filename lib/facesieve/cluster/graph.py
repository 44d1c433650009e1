"""Read the kNN graph (``index/knn/<shard>.parquet``) into arrays, in a canonical row order.

Rows are sorted by face id, which does not depend on how files were grouped into shards: a
nightly run and a fresh run over the same input hand the clustering the same arrays, so they
find the same clusters. Neighbours are turned from index ids into row positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from facesieve.errors import ConfigError
from facesieve.index.knn import knn_file
from facesieve.outputs import positions, read_parquets
from facesieve.storage.base import Store


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
    table = pa.concat_tables(read_parquets(out, [knn_file(sid) for sid in sorted(shard_ids)]))
    table = table.take(pc.sort_indices(table, [("face_id", "ascending")]))
    n = table.num_rows
    k = table.schema.field("neighbor_ids").type.list_size
    ids = table.column("id").to_numpy()
    flat_ids = table.column("neighbor_ids").combine_chunks().flatten().to_numpy()
    flat_sims = table.column("neighbor_sims").combine_chunks().flatten()
    sims = flat_sims.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, k)
    # a hash lookup: 2.6x faster than bisecting 32M neighbour ids into a million sorted ids
    neighbors = positions(pa.array(flat_ids), pa.array(ids)).astype(np.int32).reshape(n, k)
    sims = np.where(neighbors >= 0, sims, np.nan).astype(np.float32)
    return KnnGraph(table.column("face_id").combine_chunks(), ids, neighbors, sims)
