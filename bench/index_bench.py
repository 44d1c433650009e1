"""Index quality, speed and size: recall@10 against exact search, build time, queries/s, bytes per
vector, on the real LFW embeddings and on a synthetic million, with autofaiss side by side.

1. LFW: the embeddings of a `facesieve embed` run over LFW (bench/lfw_verify.py writes one to
   .bench/lfw) indexed with IVF-PQ (flat_below=0 forces it at this size).
2. Synthetic: N vectors drawn as identities on the sphere, calibrated so that same-identity and
   different-identity cosine statistics match those measured on the LFW embeddings; written as
   faces shards with done-markers and indexed by the real `facesieve index` code; queried with
   held-out faces of the same identities.
3. autofaiss (own venv: it pins numpy<2) builds an index of the same vectors under the same memory
   budget; it is searched with the parameters it tuned, without re-ranking (its default use).

    python bench/index_bench.py [--n 1000000] [--memory 8G] [--autofaiss-python VENV/bin/python]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq

from facesieve.config import Config
from facesieve.devtools.synthetic import (
    calibrate,
    centres,
    cosine_stats,
    faces_of,
    identities,
    write_embed_output,
)
from facesieve.faces.subject import central_faces
from facesieve.index.manifest import read_manifest
from facesieve.index.reader import IndexReader
from facesieve.runner.pipeline import run_command
from facesieve.storage import LocalStore

NPROBES = (16, 32, 64, 128, 256)


def subject_embeddings(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """LFW: each image's subject face (nearest its centre) with integer labels."""
    images = pq.read_table(out / "images", columns=["image_id", "label", "width", "height"])
    faces = pq.read_table(out / "faces", columns=["image_id", "bbox", "embedding"])
    label_of = dict(
        zip(*(images.column(c).to_pylist() for c in ("image_id", "label")), strict=True)
    )
    subjects = central_faces(images, faces)
    rows = np.fromiter(subjects.values(), np.int64)
    emb = np.stack(faces.column("embedding").to_numpy(zero_copy_only=False))[rows].astype(
        np.float32
    )
    _, labels = np.unique([label_of[i] for i in subjects], return_inverse=True)
    return np.ascontiguousarray(emb), labels


def exact_top(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    flat = faiss.IndexFlatIP(base.shape[1])
    flat.add(np.ascontiguousarray(base, np.float32))
    return flat.search(np.ascontiguousarray(queries, np.float32), k)[1]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def _median_qps(fn, n_queries: int, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(n_queries / statistics.median(times), 1)


def sweep(reader: IndexReader, queries: np.ndarray, truth: np.ndarray, k: int = 10) -> list[dict]:
    """Recall and queries/s (median of 5 passes over all queries) for each nprobe."""
    rows = []
    reader.search_ids(queries[:100], k)  # warm-up
    for nprobe in NPROBES:
        faiss.ParameterSpace().set_index_parameter(reader.index, "nprobe", nprobe)
        ids, _ = reader.search_ids(queries, k)
        _, raw = reader.index.search(queries, k)
        rows.append(
            {
                "nprobe": nprobe,
                "recall@10": round(recall(ids, truth), 4),
                "qps": _median_qps(lambda: reader.search_ids(queries, k), len(queries)),
                "recall@10_no_rerank": round(recall(raw, truth), 4),
                "qps_no_rerank": _median_qps(lambda: reader.index.search(queries, k), len(queries)),
            }
        )
    return rows


def index_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in (out / "index").glob("gen-*/shards/*"))


def lfw_part(lfw_out: Path, memory: str) -> dict:
    emb, labels = subject_embeddings(lfw_out)
    shutil.rmtree(lfw_out / "index", ignore_errors=True)  # measure a full build
    stats = cosine_stats(emb, labels)
    cfg = (
        Config()
        .with_overrides("index", flat_below=0, memory=memory, knn_k=0)
        .with_overrides("run", runner="local")
    )
    t = time.perf_counter()
    run_command("index", str(lfw_out), cfg.validate(), stages=("index",), show_progress=False)
    build_s = time.perf_counter() - t
    manifest = read_manifest(LocalStore(lfw_out))
    reader = IndexReader(LocalStore(lfw_out), cfg.index)
    dense = reader.dense()
    q = dense.emb[np.random.default_rng(0).choice(len(dense.emb), 2000, replace=False)]
    truth_ids = dense.ids[exact_top(dense.emb, q, 10)]
    return {
        "vectors": manifest.total,
        "factory": manifest.factory,
        "build_s": round(build_s, 1),
        "bytes_per_vector_on_disk": round(index_bytes(lfw_out) / manifest.total, 1),
        "cosine_stats": {k: round(v, 4) for k, v in stats.items()},
        "sweep": sweep(reader, q, truth_ids),
    }, stats


def synthetic_part(n: int, memory: str, stats: dict, work: Path, af_python: str | None) -> dict:
    model = calibrate(stats)
    emb, labels = identities(model, n)
    out = work / f"synthetic-{n}"
    marker = out / "synthetic.json"
    if not marker.exists():
        write_embed_output(LocalStore(out), emb, labels)
        marker.write_text(json.dumps({"n": n}))
    rng = np.random.default_rng(123)
    qlabels = rng.choice(labels, 1000)
    queries = faces_of(model, centres(model, int(labels.max()) + 1, model.seed)[qlabels], seed=999)
    cfg = (
        Config()
        .with_overrides("index", memory=memory, knn_k=0)
        .with_overrides("run", runner="local")
        .validate()
    )
    t = time.perf_counter()
    result = run_command("index", str(out), cfg, stages=("index",), show_progress=False)
    build_s = time.perf_counter() - t
    manifest = read_manifest(LocalStore(out))
    reader = IndexReader(LocalStore(out), cfg.index)
    dense = reader.dense()
    res = {
        "vectors": n,
        "model": model.__dict__,
        "synthetic_stats": {k: round(v, 4) for k, v in cosine_stats(emb, labels).items()},
        "factory": manifest.factory,
        "build_s": round(build_s, 1),
        "timings": {name: round(r.seconds, 1) for name, r in result.steps.items()},
        "bytes_per_vector_on_disk": round(index_bytes(out) / n, 1),
        "sweep": sweep(reader, queries, dense.ids[exact_top(dense.emb, queries, 10)]),
    }
    if af_python:
        np.save(work / "emb.npy", emb)
        np.save(work / "queries.npy", queries)
        # autofaiss gets the vectors in generation order: its ids are positions in ``emb``
        res["autofaiss"] = run_autofaiss(af_python, work, memory, exact_top(emb, queries, 10))
    return res


AUTOFAISS = r"""
import json, sys, time, numpy as np, faiss
from autofaiss import build_index
work, memory = sys.argv[1], sys.argv[2]
emb = np.load(f"{work}/emb.npy", mmap_mode="r")
t = time.perf_counter()
index, info = build_index(embeddings=np.ascontiguousarray(emb), save_on_disk=True,
    index_path=f"{work}/af.index", index_infos_path=f"{work}/af.json", metric_type="ip",
    max_index_memory_usage=memory, current_memory_available="16G", verbose=30)
build = time.perf_counter() - t
q = np.load(f"{work}/queries.npy")
index.search(q[:10], 10)
t = time.perf_counter(); _, ids = index.search(q, 10); s = time.perf_counter() - t
np.save(f"{work}/af_ids.npy", ids)
print(json.dumps({"build_s": round(build, 1), "qps": round(len(q) / s, 1), "info": info}))
"""


def run_autofaiss(python: str, work: Path, memory: str, truth: np.ndarray) -> dict:
    proc = subprocess.run(
        [python, "-c", AUTOFAISS, str(work), memory], capture_output=True, text=True
    )
    if proc.returncode:
        return {"error": proc.stderr[-2000:]}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    ids = np.load(work / "af_ids.npy")
    res["recall@10"] = round(recall(ids, truth), 4)
    res["bytes_per_vector_on_disk"] = round(
        (work / "af.index").stat().st_size / len(np.load(work / "emb.npy", mmap_mode="r")), 1
    )
    return res


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lfw-out", type=Path, default=Path(".bench/lfw"))
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--memory", default="8G")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--autofaiss-python")
    ap.add_argument(
        "--autofaiss-only", action="store_true", help="reuse the synthetic set; skip ours"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = args.work or Path(tempfile.mkdtemp(prefix="fs-index-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"faiss": faiss.__version__, "threads": faiss.omp_get_max_threads()}
    if args.autofaiss_only:
        queries = np.load(work / "queries.npy")
        truth = exact_top(np.load(work / "emb.npy"), queries, 10)
        report["autofaiss"] = run_autofaiss(args.autofaiss_python, work, args.memory, truth)
        print(json.dumps(report, indent=1))
        return 0
    lfw, stats = lfw_part(args.lfw_out, args.memory)
    report["lfw"] = lfw
    print(json.dumps(report, indent=1), flush=True)
    report["synthetic"] = synthetic_part(args.n, args.memory, stats, work, args.autofaiss_python)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
