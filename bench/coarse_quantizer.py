"""The coarse step of an IVF index: a flat quantizer (every centroid compared, what facesieve
builds) against an HNSW graph over the same centroids, on a trained index and real vectors.

Loads a trained, empty index (``OUT/index/gen-*/trained.faiss``), adds the first ``--faces``
embeddings of ``FACES_DIR``'s shards to it and to a copy whose coarse quantizer is an HNSW graph
(M 32) of the same centroids, and prints the time to add (assigning every vector to its list),
the queries per second of 10,000 of the added faces at several nprobe, and how many of the
flat quantizer's top-100 results the HNSW one finds. With few vectors the lists are short, so
the search time is mostly the coarse step.

    python bench/coarse_quantizer.py OUT/index/gen-*/trained.faiss OUT/faces --faces 300000
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from facesieve.api import embeddings
from facesieve.outputs import read_parquet
from facesieve.storage import LocalStore

log = logging.getLogger("bench.coarse_quantizer")


def load(faces_dir: Path, n: int) -> np.ndarray:
    store, chunks, have = LocalStore(faces_dir), [], 0
    for path in sorted(faces_dir.glob("*.parquet")):
        if have >= n:
            break
        chunks.append(embeddings(read_parquet(store, path.name, ["embedding"])))
        have += len(chunks[-1])
    return np.concatenate(chunks)[:n].astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("trained", type=Path, help="a trained, empty IVF index file")
    ap.add_argument("faces_dir", type=Path, help="a folder of faces shards (OUT/faces)")
    ap.add_argument("--faces", type=int, default=300_000)
    ap.add_argument("--nprobe", default="64,128,256")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    faiss.omp_set_num_threads(2)
    flat = faiss.read_index(str(args.trained))
    ivf = faiss.extract_index_ivf(flat)
    emb = load(args.faces_dir, args.faces)
    hnsw = faiss.IndexHNSWFlat(ivf.d, 32, flat.metric_type)
    hnsw.add(ivf.quantizer.reconstruct_n(0, ivf.nlist))
    graph = faiss.clone_index(flat)
    faiss.extract_index_ivf(graph).quantizer = hnsw  # ``hnsw`` stays referenced below
    result: dict[str, object] = {"nlist": ivf.nlist, "faces": len(emb), "add_s": {}, "search": []}
    for name, index in (("flat", flat), ("hnsw", graph)):
        t = time.perf_counter()
        index.add(emb)
        result["add_s"][name] = round(time.perf_counter() - t, 1)  # type: ignore[index]
    queries = emb[:: max(1, len(emb) // 10_000)][:10_000]
    for nprobe in (int(x) for x in args.nprobe.split(",")):
        row: dict[str, object] = {"nprobe": nprobe}
        found = {}
        for name, index in (("flat", flat), ("hnsw", graph)):
            faiss.extract_index_ivf(index).nprobe = nprobe
            hnsw.hnsw.efSearch = max(64, nprobe)
            t = time.perf_counter()
            _, found[name] = index.search(queries, 100)
            row[f"{name}_qps"] = round(len(queries) / (time.perf_counter() - t))
        pairs = zip(found["flat"], found["hnsw"], strict=True)
        row["agreement"] = round(float(np.mean([len(set(a) & set(b)) / 100 for a, b in pairs])), 4)
        result["search"].append(row)  # type: ignore[attr-defined]
        log.info("%s", row)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
