"""Everything the cleaning rules read, loaded once and aligned to one face order.

Images and faces come from the embed output, clusters from ``OUT/clusters`` and neighbours from
the index's kNN graph (turned from graph order into face-row order here, so every rule indexes
one set of arrays). Images are sorted by image id and faces by face id, and clusters are
numbered by their smallest face id for the rules: nothing the rules see depends on how files
were grouped into shards or on the history of cluster ids, so a nightly run and a fresh run on
the same input decide the same. Memory: the embeddings stay on local disk
(``clean.embeddings``); what is in RAM is the tables and the graph, measured in
docs/BENCHMARKS.md "Memory of the global steps".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from facesieve.clean.embeddings import EmbeddingRows, read_embeddings
from facesieve.cluster.graph import KnnGraph, load_graph
from facesieve.cluster.job import FACES_KEY
from facesieve.errors import ConfigError
from facesieve.outputs import positions, read_folder, read_parquet
from facesieve.schema import FACES, PHOTO_DESC_BYTES
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
    "photo_desc",
]
FACE_COLUMNS = [
    "face_id",
    "image_id",
    "bbox",
    "landmarks",
    "det_score",
    "face_px",
    "sharpness",
]  # and the embedding, read apart (clean.embeddings)


@dataclass
class CleanInputs:
    images: pa.Table  # IMAGE_COLUMNS, one row per input file
    faces: pa.Table  # FACE_COLUMNS
    face_image: np.ndarray  # (F,) row in ``images`` of each face
    emb: EmbeddingRows  # (F, 512) float32, L2-normalised, read by rows from local disk
    cluster: np.ndarray  # (F,) int64 canonical cluster number (by smallest face id), -1 = noise
    cluster_ids: np.ndarray  # (F,) int64 the cluster's stable id (clusters/faces.parquet)
    neighbors: np.ndarray  # (F, K) int32 face rows, -1 = none
    sims: np.ndarray  # (F, K) float32 cosines, NaN = none
    photo_desc: np.ndarray  # (I, PHOTO_DESC_BYTES) uint8 whole-photo descriptors, 0 = none

    @property
    def n_images(self) -> int:
        return self.images.num_rows


def load_inputs(out: Store, graph_shards: list[str]) -> CleanInputs:
    """Everything the rules read; ``graph_shards`` are the faces shards in the kNN graph."""
    try:
        images = read_folder(out, "images", IMAGE_COLUMNS)
    except (KeyError, pa.ArrowInvalid) as exc:
        raise ConfigError(
            f"the images under {out.root_uri} lack columns this version needs ("
            f"{', '.join(IMAGE_COLUMNS)}): they were written by an older facesieve; run "
            "`facesieve embed` (or `run`) again, which redoes them"
        ) from exc
    if images is None:
        raise ConfigError(f"no images under {out.root_uri}: run `facesieve embed` first")
    images = images.take(pc.sort_indices(images, [("image_id", "ascending")]))
    photo_desc = _descriptors(images.column("photo_desc"))
    faces = read_folder(out, "faces", FACE_COLUMNS)
    if faces is None or faces.num_rows == 0:
        empty = np.zeros((0,), np.int64)
        return CleanInputs(
            images,
            pa.schema([FACES.field(c) for c in FACE_COLUMNS]).empty_table(),
            empty,
            EmbeddingRows(0),
            empty,
            empty,
            np.zeros((0, 1), np.int32),
            np.zeros((0, 1), np.float32),
            photo_desc,
        )
    if not out.exists(FACES_KEY):
        raise ConfigError(f"no clusters under {out.root_uri}: run `facesieve cluster` first")
    order = pc.sort_indices(faces, [("face_id", "ascending")])
    faces = faces.take(order)
    emb = read_embeddings(out, "faces", order.to_numpy())
    face_ids = faces.column("face_id").combine_chunks()
    face_image = positions(faces.column("image_id"), images.column("image_id"))
    clusters = read_parquet(out, FACES_KEY)
    at = positions(face_ids, clusters.column("face_id"))
    stable = np.where(at >= 0, clusters.column("cluster_id").to_numpy()[np.maximum(at, 0)], -1)
    neighbors, sims = _face_graph(load_graph(out, graph_shards), face_ids)
    return CleanInputs(
        images=images,
        faces=faces,
        face_image=face_image,
        emb=emb,
        cluster=canonical_clusters(stable),
        cluster_ids=stable.astype(np.int64),
        neighbors=neighbors,
        sims=sims,
        photo_desc=photo_desc,
    )


def _face_graph(graph: KnnGraph, face_ids: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The graph's rows and neighbour positions, which are in index order, in face rows:
    (F, K) int32 neighbours (-1 none) and float32 cosines (NaN none). A block of graph rows at a
    time, so no (F, K) int64 temporary exists (2.6 GB at 10M faces)."""
    g2f = positions(graph.face_ids, face_ids).astype(np.int32)
    k = graph.neighbors.shape[1]
    neighbors = np.full((len(face_ids), k), -1, np.int32)
    sims = np.full((len(face_ids), k), np.nan, np.float32)
    for s in range(0, len(g2f), GRAPH_BLOCK):
        rows, nb = g2f[s : s + GRAPH_BLOCK], graph.neighbors[s : s + GRAPH_BLOCK]
        ok = rows >= 0
        mapped = np.where(nb >= 0, g2f[np.maximum(nb, 0)], -1)
        neighbors[rows[ok]] = mapped[ok]
        sims[rows[ok]] = np.where(mapped[ok] >= 0, graph.sims[s : s + GRAPH_BLOCK][ok], np.nan)
    return neighbors, sims


GRAPH_BLOCK = 1 << 18  # graph rows handled at a time (here and by clean.candidates)


def _descriptors(column: pa.ChunkedArray) -> np.ndarray:
    """(I, PHOTO_DESC_BYTES) uint8 from the binary column; zero rows where it is null."""
    out = np.zeros((len(column), PHOTO_DESC_BYTES), np.uint8)
    values = column.combine_chunks()
    valid = np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))
    if len(valid):
        taken = values.take(pa.array(valid))
        flat = np.frombuffer(taken.buffers()[1], np.uint8)
        start = taken.offset * PHOTO_DESC_BYTES
        out[valid] = flat[start : start + len(valid) * PHOTO_DESC_BYTES].reshape(len(valid), -1)
    return out


def canonical_clusters(stable: np.ndarray) -> np.ndarray:
    """Cluster numbers 0..C-1 in the order of each cluster's first face (faces sorted by face
    id): the same for a nightly and a fresh run, whatever ids the clusters carry."""
    out = np.full(len(stable), -1, np.int64)
    ok = stable >= 0
    if not ok.any():
        return out
    values, first = np.unique(stable[ok], return_index=True)
    rank = np.empty(len(values), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(values))
    out[ok] = rank[np.searchsorted(values, stable[ok])]
    return out
