"""Everything the cleaning rules read, loaded once and aligned to one face order.

Images and faces come from the embed output, clusters from ``OUT/clusters`` and neighbours from
the index's kNN graph (turned from index order into face-row order here, so every rule indexes
one set of arrays). Memory: about 2.2 KB per face (the embedding dominates), 2.2 GB at 1M faces.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facesieve.cluster.graph import load_knn
from facesieve.cluster.job import FACES_KEY
from facesieve.errors import ConfigError
from facesieve.schema import EMBEDDING_DIM, FACES
from facesieve.storage.base import Store

IMAGE_COLUMNS = [
    "image_id",
    "uri",
    "label",
    "width",
    "height",
    "bytes",
    "sha256",
    "status",
    "error",
    "n_faces",
]
FACE_COLUMNS = [
    "face_id",
    "image_id",
    "bbox",
    "landmarks",
    "det_score",
    "face_px",
    "sharpness",
    "embedding",
]


@dataclass
class CleanInputs:
    images: pa.Table  # IMAGE_COLUMNS, one row per input file
    faces: pa.Table  # FACE_COLUMNS without the embedding
    face_image: np.ndarray  # (F,) row in ``images`` of each face
    emb: np.ndarray  # (F, 512) float32, L2-normalised
    cluster: np.ndarray  # (F,) int64, -1 = noise
    neighbors: np.ndarray  # (F, K) int64 face rows, -1 = none
    sims: np.ndarray  # (F, K) float32 cosines, NaN = none

    @property
    def n_images(self) -> int:
        return self.images.num_rows


def _read_folder(
    out: Store, folder: str, columns: list[str], embeddings: list[np.ndarray] | None = None
) -> pa.Table | None:
    """All shards of one folder; with ``embeddings``, the embedding column is moved out into
    that list shard by shard (as float32 arrays), so Arrow never holds all of them at once."""
    tables = []
    for info in sorted(out.list(f"{folder}/"), key=lambda i: i.key):
        if not info.key.endswith(".parquet"):
            continue
        table = pq.read_table(io.BytesIO(out.read_bytes(info.key)), columns=columns)
        if embeddings is not None:
            flat = table.column("embedding").combine_chunks().flatten().to_numpy()
            embeddings.append(flat.reshape(-1, EMBEDDING_DIM).astype(np.float32, copy=False))
            table = table.drop_columns(["embedding"])
        tables.append(table)
    return pa.concat_tables(tables) if tables else None


def load_inputs(out: Store) -> CleanInputs:
    images = _read_folder(out, "images", IMAGE_COLUMNS)
    if images is None:
        raise ConfigError(f"no images under {out.root_uri}: run `facesieve embed` first")
    chunks: list[np.ndarray] = []
    faces = _read_folder(out, "faces", FACE_COLUMNS, chunks)
    if faces is None or faces.num_rows == 0:
        empty = np.zeros((0,), np.int64)
        return CleanInputs(
            images,
            pa.schema([FACES.field(c) for c in FACE_COLUMNS[:-1]]).empty_table(),
            empty,
            np.zeros((0, EMBEDDING_DIM), np.float32),
            empty,
            np.zeros((0, 1), np.int64),
            np.zeros((0, 1), np.float32),
        )
    if not out.exists(FACES_KEY):
        raise ConfigError(f"no clusters under {out.root_uri}: run `facesieve cluster` first")
    emb = np.concatenate(chunks)
    del chunks
    face_ids = faces.column("face_id").combine_chunks()
    face_image = pc.index_in(faces.column("image_id"), value_set=images.column("image_id"))
    clusters = pq.read_table(io.BytesIO(out.read_bytes(FACES_KEY)))
    at = pc.index_in(face_ids, value_set=clusters.column("face_id")).to_numpy(zero_copy_only=False)
    cluster_col = clusters.column("cluster_id").to_numpy()
    cluster = np.where(np.isnan(at.astype(float)), -1, cluster_col[np.nan_to_num(at).astype(int)])
    graph = load_knn(out)
    # graph rows are in index order: map them (and their neighbour positions) to face rows
    g2f = pc.index_in(graph.face_ids, value_set=face_ids).to_numpy(zero_copy_only=False)
    g2f = np.nan_to_num(g2f.astype(float), nan=-1).astype(np.int64)
    k = graph.neighbors.shape[1]
    neighbors = np.full((faces.num_rows, k), -1, np.int64)
    sims = np.full((faces.num_rows, k), np.nan, np.float32)
    ok = g2f >= 0
    mapped = np.where(graph.neighbors >= 0, g2f[np.maximum(graph.neighbors, 0)], -1)
    neighbors[g2f[ok]] = mapped[ok]
    sims[g2f[ok]] = np.where(mapped[ok] >= 0, graph.sims[ok], np.nan)
    return CleanInputs(
        images=images,
        faces=faces,
        face_image=face_image.to_numpy(zero_copy_only=False).astype(np.int64),
        emb=emb,
        cluster=np.asarray(cluster, np.int64),
        neighbors=neighbors,
        sims=sims,
    )
