"""``facesieve cluster OUT``: identities from the kNN graph, written to ``OUT/clusters/``.

Outputs (docs/FORMATS.md): ``faces.parquet`` (face_id -> cluster_id, probability) and
``identities.parquet`` (one row per cluster: size, images, majority label, purity).
``cluster.json`` records the parameters and the graph key, so a rerun on an unchanged graph with
the same parameters returns at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from facesieve.cluster.graph import load_knn
from facesieve.cluster.hierarchy import hdbscan_knn
from facesieve.config import ClusterConfig, Config
from facesieve.outputs import positions, read_folder
from facesieve.runner.shard_task import parquet_bytes
from facesieve.storage import open_store
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

FACES_KEY = "clusters/faces.parquet"
IDENTITIES_KEY = "clusters/identities.parquet"
META_KEY = "clusters/cluster.json"
VERSION = 3  # bump when the same inputs and parameters give different clusters

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


@dataclass(frozen=True)
class ClusterResult:
    mode: str
    faces: int
    clusters: int
    noise: int
    graph_parts: int
    seconds: float
    up_to_date: bool = False


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


def run_cluster(out_uri: str, config: Config) -> ClusterResult:
    """Cluster every indexed face; skip when the graph and parameters are unchanged."""
    started = time.perf_counter()
    out = open_store(out_uri, config.run.s3_endpoint)
    graph = load_knn(out)
    faces = read_face_labels(out)
    mode = resolve_mode(config.cluster, faces.column("label"))
    blob = json.dumps(
        {"v": VERSION, "graph": graph.key, "params": asdict(config.cluster), "mode": mode}
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    if out.exists(META_KEY):
        meta = json.loads(out.read_bytes(META_KEY))
        if meta.get("key") == key:
            log.info("clusters are up to date")
            s = meta["summary"]
            return ClusterResult(
                **{**s, "seconds": time.perf_counter() - started, "up_to_date": True}
            )
    cfg = config.cluster
    result = hdbscan_knn(
        graph.neighbors, graph.sims, cfg.min_cluster_size, cfg.min_samples, cfg.selection
    )
    # faces are in shard order, the graph in index order: align by face_id
    order = positions(graph.face_ids, faces.column("face_id"))
    image_ids = faces.column("image_id").combine_chunks().take(order)
    labels = faces.column("label").combine_chunks().take(order)
    out.write_bytes(
        FACES_KEY,
        parquet_bytes(
            pa.table(
                [graph.face_ids, pa.array(result.labels), pa.array(result.probabilities)],
                schema=CLUSTER_FACES,
            )
        ),
    )
    identities = identities_table(result.labels, image_ids, labels, mode == "labeled")
    out.write_bytes(IDENTITIES_KEY, parquet_bytes(identities))
    summary = ClusterResult(
        mode=mode,
        faces=len(graph),
        clusters=identities.num_rows,
        noise=int((result.labels < 0).sum()),
        graph_parts=result.components,
        seconds=round(time.perf_counter() - started, 3),
    )
    meta = {
        "key": key,
        "summary": {k: v for k, v in asdict(summary).items() if k not in ("seconds", "up_to_date")},
    }
    meta["params"] = asdict(cfg)
    meta["seconds"] = summary.seconds
    out.write_bytes(META_KEY, json.dumps(meta, indent=1).encode())
    log.info("%d faces -> %d clusters, %d noise", summary.faces, summary.clusters, summary.noise)
    return summary
