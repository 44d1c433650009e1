"""What re-ranking on float16 embeddings costs: the kNN graph of real faces built exactly from
the stored float32 embeddings against the one from their float16 roundings (what
``facesieve.index.reader`` re-ranks since the graph holds every embedding in one process).

Both graphs are exact (every face against every face, float64 products): the difference is the
rounding alone, not the index. Printed: the RMS and largest change of a neighbour's cosine, the
share of faces whose K neighbours (ids and order) are the same, and the share of the float32
neighbours that the float16 graph holds.

    python bench/rerank_precision.py OUT [--k 32] [--json]   # OUT: a `facesieve embed` output
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from facesieve.api import embeddings
from facesieve.index.reader import RERANK_DTYPE, norms
from facesieve.outputs import read_folder
from facesieve.storage import LocalStore

log = logging.getLogger("bench.rerank_precision")
BLOCK = 1024


def exact_graph(emb: np.ndarray, k: int) -> np.ndarray:
    """Every row's k nearest other rows, best first, by float64 cosines, in blocks."""
    x = emb.astype(np.float64)
    x_norms = norms(x)
    ids = np.empty((len(x), k), np.int64)
    for s in range(0, len(x), BLOCK):
        block = (x[s : s + BLOCK] @ x.T) / (x_norms[s : s + BLOCK, None] * x_norms[None, :])
        block[np.arange(len(block)), s + np.arange(len(block))] = -np.inf  # not itself
        top = np.argpartition(-block, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(block, top, 1), axis=1, kind="stable")
        ids[s : s + BLOCK] = np.take_along_axis(top, order, 1)
    return ids


def cosine_of(emb: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """float64 cosines of each row with the rows ``ids`` names."""
    x = emb.astype(np.float64)
    x /= norms(x)[:, None]
    return np.einsum("nd,nkd->nk", x, x[ids])


def measure(out: Path, k: int) -> dict[str, object]:
    emb32 = embeddings(read_folder(LocalStore(out), "faces", ["face_id", "embedding"]))
    emb16 = emb32.astype(RERANK_DTYPE)
    ids32 = exact_graph(emb32, k)
    ids16 = exact_graph(emb16, k)
    change = cosine_of(emb16, ids32) - cosine_of(emb32, ids32)  # the same pairs, both roundings
    same_rows = (ids16 == ids32).all(axis=1)
    held = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids16, ids32, strict=True)])
    return {
        "faces": len(emb32),
        "k": k,
        "cosine_change_rms": float(np.sqrt(np.mean(change**2))),
        "cosine_change_max": float(np.abs(change).max()),
        "rows_identical": round(float(same_rows.mean()), 5),
        "neighbours_held": round(float(held), 5),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path, help="a facesieve embed output (OUT/faces/*.parquet)")
    ap.add_argument("--k", type=int, default=32, help="neighbours per face (index.knn_k)")
    ap.add_argument("--json", action="store_true", help="one line of JSON")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    result = measure(args.out, args.k)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
