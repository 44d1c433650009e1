"""``OUT/index/knn.parquet``: every face's K nearest neighbours with exact cosine similarities.

Computed through the index (approximate candidates, re-ranked exactly on the stored embeddings)
in batches of ``knn_batch`` faces. Each batch is written as its own part file under
``index/knn-parts/<key>/`` before the next starts, so a killed run resumes at the first missing
part; the parts are joined into ``knn.parquet`` at the end. ``key`` combines the index fingerprint
and K, so a changed index never reuses stale parts.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.config import IndexConfig
from facesieve.index.reader import DenseEmbeddings, IndexReader
from facesieve.runner.shard_task import parquet_bytes
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

KNN_KEY = "index/knn.parquet"
KNN_META = "index/knn.json"


def knn_schema(k: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("id", pa.int64(), nullable=False),
            pa.field("neighbor_ids", pa.list_(pa.int64(), k), nullable=False),  # -1: none
            pa.field("neighbor_sims", pa.list_(pa.float32(), k), nullable=False),  # NaN: none
        ]
    )


@dataclass(frozen=True)
class KnnResult:
    faces: int
    k: int
    parts_total: int
    parts_reused: int
    seconds: float
    up_to_date: bool = False


def knn_key(reader: IndexReader, k: int) -> str:
    return f"{reader.manifest.fingerprint()}-k{k}"


def compute_part(
    reader: IndexReader, faces: DenseEmbeddings, start: int, stop: int, k: int
) -> pa.Table:
    """Neighbours of faces[start:stop], each face itself excluded."""
    ids, sims = reader.search_ids(faces.emb[start:stop], k, exclude=faces.ids[start:stop])
    sims = np.where(np.isfinite(sims), sims, np.nan).astype(np.float32)
    return pa.Table.from_arrays(
        [
            faces.face_ids.slice(start, stop - start),
            pa.array(faces.ids[start:stop]),
            pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), k),
            pa.FixedSizeListArray.from_arrays(pa.array(sims.reshape(-1)), k),
        ],
        schema=knn_schema(k),
    )


def build_knn(out: Store, cfg: IndexConfig, reader: IndexReader | None = None) -> KnnResult:
    """Write ``index/knn.parquet`` for the current index, resuming from finished parts."""
    started = time.perf_counter()
    reader = reader or IndexReader(out, cfg)
    k = min(cfg.knn_k, max(reader.index.ntotal - 1, 1))
    key = knn_key(reader, k)
    if out.exists(KNN_META) and json.loads(out.read_bytes(KNN_META)).get("key") == key:
        n = reader.manifest.total
        return KnnResult(n, k, 0, 0, time.perf_counter() - started, up_to_date=True)
    faces = reader.dense()
    n = len(faces.ids)
    bounds = list(range(0, n, cfg.knn_batch))
    prefix = f"index/knn-parts/{key}"
    reused = 0
    for b, start in enumerate(bounds):
        part = f"{prefix}/part-{b:05d}.parquet"
        if out.exists(part):
            reused += 1
            continue
        out.write_bytes(
            part,
            parquet_bytes(compute_part(reader, faces, start, min(start + cfg.knn_batch, n), k)),
        )
        log.info("kNN part %d/%d written", b + 1, len(bounds))
    tables = [
        pq.read_table(io.BytesIO(out.read_bytes(f"{prefix}/part-{b:05d}.parquet")))
        for b in range(len(bounds))
    ]
    out.write_bytes(KNN_KEY, parquet_bytes(pa.concat_tables(tables)))
    meta = {"key": key, "k": k, "faces": n, "index_fingerprint": reader.manifest.fingerprint()}
    out.write_bytes(KNN_META, json.dumps(meta, indent=1).encode())
    for b in range(len(bounds)):
        out.delete(f"{prefix}/part-{b:05d}.parquet")
    return KnnResult(n, k, len(bounds), reused, time.perf_counter() - started)
