"""Read ``index/knn.parquet`` into arrays: neighbour row positions and exact cosines."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.errors import ConfigError
from facesieve.index.knn import KNN_KEY, KNN_META
from facesieve.storage.base import Store


@dataclass(frozen=True)
class KnnGraph:
    face_ids: pa.Array  # (n,) in index order
    neighbors: np.ndarray  # (n, K) int32 row positions, -1 = none
    sims: np.ndarray  # (n, K) float32 cosine, NaN = none
    key: str  # identifies the index and K the graph was built from

    def __len__(self) -> int:
        return len(self.neighbors)


def load_knn(out: Store) -> KnnGraph:
    """The kNN graph of ``facesieve index``, with global ids turned into row positions."""
    if not out.exists(KNN_META):
        raise ConfigError(
            f"no kNN graph under {out.root_uri}: run `facesieve index` (with index.knn_k > 0)"
        )
    meta = json.loads(out.read_bytes(KNN_META))
    table = pq.read_table(io.BytesIO(out.read_bytes(KNN_KEY)))
    k = int(meta["k"])
    ids = table.column("id").to_numpy()
    flat_ids = table.column("neighbor_ids").combine_chunks().flatten().to_numpy()
    flat_sims = table.column("neighbor_sims").combine_chunks().flatten()
    sims = flat_sims.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, k)
    order = np.argsort(ids, kind="stable")
    found = np.searchsorted(ids, flat_ids, sorter=order)
    found = np.clip(found, 0, len(ids) - 1)
    pos = order[found]
    valid = (flat_ids >= 0) & (ids[pos] == flat_ids)
    neighbors = np.where(valid, pos, -1).astype(np.int32).reshape(-1, k)
    sims = np.where(neighbors >= 0, sims, np.nan).astype(np.float32)
    return KnnGraph(table.column("face_id").combine_chunks(), neighbors, sims, str(meta["key"]))
