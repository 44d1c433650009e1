"""``facesieve cluster OUT``: identities from the kNN graph, written to ``OUT/clusters/``.

Outputs (docs/FORMATS.md): ``faces.parquet`` (face_id -> cluster_id, probability),
``identities.parquet`` (one row per cluster: size, images, majority label, purity) and
``cluster.json`` (parameters, counts, what happened to the ids, the next id to issue). The unit's
digest covers the graph's state and the parameters, so an unchanged graph is not clustered again.
Ids are stable across runs (``cluster.ids``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from facesieve.cluster.graph import load_graph
from facesieve.cluster.hierarchy import hdbscan_knn
from facesieve.cluster.ids import stable_ids
from facesieve.config import ClusterConfig, Config
from facesieve.outputs import parquet_bytes, positions, read_folder, read_parquet
from facesieve.storage.base import Store
from facesieve.work import Marker, Resources, Unit, UnitOutput, digest
from facesieve.work.contract import Progress

log = logging.getLogger(__name__)

FACES_KEY = "clusters/faces.parquet"
IDENTITIES_KEY = "clusters/identities.parquet"
META_KEY = "clusters/cluster.json"
UNIT = "clusters"
VERSION = 4  # bump when the same inputs and parameters give different clusters

CLUSTER_FACES = pa.schema(
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.int64(), nullable=False),  # -1: noise, no identity
        pa.field("probability", pa.float32(), nullable=False),
    ]
)
IDENTITIES = pa.schema(
    [
        pa.field("cluster_id", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),  # faces
        pa.field("images", pa.int64(), nullable=False),
        pa.field("majority_label", pa.string()),  # null in unlabeled mode
        pa.field("purity", pa.float32()),  # share of the cluster's faces with that label
        pa.field("labels", pa.int64(), nullable=False),  # distinct labels among its faces
    ]
)


def read_face_labels(out: Store) -> pa.Table:
    """face_id, image_id, label of every face (no embeddings), in shard order."""
    columns = ["face_id", "image_id", "label"]
    return read_folder(out, "faces", columns) or pa.table({c: [] for c in columns})


def resolve_mode(cfg: ClusterConfig, labels: pa.ChunkedArray | pa.Array) -> str:
    """``auto`` becomes labeled when at least half the faces carry a label."""
    if cfg.mode != "auto":
        return cfg.mode
    n = len(labels)
    return "labeled" if n and labels.null_count <= n / 2 else "unlabeled"


def identities_table(
    cluster_ids: np.ndarray, image_ids: pa.Array, labels: pa.Array, labeled: bool
) -> pa.Table:
    """One row per cluster with its size, distinct images and (labeled mode) majority label."""
    t = pa.table({"c": cluster_ids, "image": image_ids, "label": labels})
    t = t.filter(pc.greater_equal(t["c"], 0))
    size = t.group_by("c").aggregate([("image", "count"), ("image", "count_distinct")])
    size = size.sort_by("c")
    rows = {
        "cluster_id": size["c"],
        "size": size["image_count"],
        "images": size["image_count_distinct"],
    }
    n = size.num_rows
    majority: list[str | None] = [None] * n
    purity: list[float | None] = [None] * n
    distinct = [0] * n
    if labeled and n:
        counts = (
            t.filter(pc.is_valid(t["label"]))
            .group_by(["c", "label"])
            .aggregate([("image", "count")])
        )
        pos = {c: i for i, c in enumerate(size["c"].to_pylist())}
        best: dict[int, tuple[int, str]] = {}
        for c, label, count in zip(
            *(counts[x].to_pylist() for x in ("c", "label", "image_count")), strict=True
        ):
            distinct[pos[c]] += 1
            if c not in best or (count, label) > best[c]:
                best[c] = (count, label)
        sizes = rows["size"].to_pylist()
        for c, (count, label) in best.items():
            majority[pos[c]] = label
            purity[pos[c]] = count / sizes[pos[c]]
    rows.update(majority_label=majority, purity=purity, labels=distinct)
    return pa.table(rows).cast(IDENTITIES)


class ClusterStep:
    """One unit: every face's identity cluster, with ids kept stable across runs."""

    name = "cluster"
    item_name = ""
    owned_prefixes = ()

    def __init__(
        self, out: Store, config: Config, graph_digest: str, shard_ids: list[str], faces: int
    ) -> None:
        self.out, self.config = out, config
        self.graph_digest, self.shard_ids = graph_digest, shard_ids
        # the graph, its edges, the spanning tree and HDBSCAN's tree: 1.6 GB at 1M faces
        # (measured in one process; 3.35 GB before the edges were found in blocks)
        self.resources = Resources(cpus=1.0, memory_gb=round(faces * 1.7e-6 + 0.5, 1))

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        d = digest(self.name, VERSION, self.graph_digest, asdict(self.config.cluster))
        return [Unit(UNIT, d, "cluster identities")]

    def setup(self, device: str, threads: int) -> None:
        pass

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        started = time.perf_counter()
        out, cfg = self.out, self.config.cluster
        graph = load_graph(out, self.shard_ids)
        faces = read_face_labels(out)
        at = positions(graph.face_ids, faces.column("face_id"))
        image_ids = faces.column("image_id").combine_chunks().take(at)
        labels = faces.column("label").combine_chunks().take(at)
        mode = resolve_mode(cfg, labels)
        result = hdbscan_knn(
            graph.neighbors, graph.sims, cfg.min_cluster_size, cfg.min_samples, cfg.selection
        )
        previous, old_sizes, next_id = self._previous(graph.face_ids)
        ids, next_id, changes = stable_ids(result.labels, previous, old_sizes, next_id)
        identities = identities_table(ids, image_ids, labels, mode == "labeled")
        out.write_bytes(IDENTITIES_KEY, parquet_bytes(identities))
        faces_table = pa.table(
            [graph.face_ids, pa.array(ids), pa.array(result.probabilities)], schema=CLUSTER_FACES
        )
        out.write_bytes(FACES_KEY, parquet_bytes(faces_table))
        summary = {
            "mode": mode,
            "faces": len(graph),
            "clusters": identities.num_rows,
            "noise": int((ids < 0).sum()),
            "graph_parts": result.components,
            "ids": changes.as_dict(),
        }
        meta = {
            "summary": summary,
            "params": asdict(cfg),
            "next_cluster_id": next_id,
            "seconds": round(time.perf_counter() - started, 3),
        }
        out.write_bytes(META_KEY, json.dumps(meta, indent=1).encode())
        progress(1)
        log.info(
            "%d faces -> %d clusters (%s), %d noise",
            summary["faces"],
            summary["clusters"],
            ", ".join(f"{k} {v}" for k, v in changes.as_dict().items()),
            summary["noise"],
        )
        stats = {
            "faces": summary["faces"],
            "clusters": summary["clusters"],
            "noise": summary["noise"],
        }
        return UnitOutput(stats, [FACES_KEY, IDENTITIES_KEY, META_KEY], {"summary": summary})

    def _previous(self, face_ids: pa.Array) -> tuple[np.ndarray, dict[int, int], int]:
        """The previous run's id of each face (-1 none), its clusters' sizes and next id."""
        none = np.full(len(face_ids), -1, np.int64)
        if not self.out.exists(FACES_KEY):
            return none, {}, 0
        old = read_parquet(self.out, FACES_KEY, ["face_id", "cluster_id"])
        at = positions(face_ids, old.column("face_id"))
        cids = old.column("cluster_id").to_numpy()
        previous = np.where(at >= 0, cids[np.maximum(at, 0)], -1) if len(cids) else none
        valid = cids[cids >= 0]
        sizes = dict(zip(*np.unique(valid, return_counts=True), strict=True))
        next_id = int(valid.max()) + 1 if len(valid) else 0
        if self.out.exists(META_KEY):  # ids retired before are never issued again
            meta = json.loads(self.out.read_bytes(META_KEY))
            next_id = max(next_id, int(meta.get("next_cluster_id", 0)))
        return previous, {int(k): int(v) for k, v in sizes.items()}, next_id


def cluster_summary(out: Store) -> dict[str, Any] | None:
    """The summary of the last clustering (``clusters/cluster.json``), if there is one."""
    if not out.exists(META_KEY):
        return None
    return dict(json.loads(out.read_bytes(META_KEY))["summary"])
