"""kNN-graph HDBSCAN against the exact `hdbscan` library, on real LFW embeddings.

For random subsets of an embed output (default: the LFW run of bench/lfw_verify.py), prints the
adjusted Rand index between facesieve's clustering and the exact library, next to the exact
library's agreement with itself when only the order of its input rows changes (HDBSCAN breaks
ties in merge order, so that is the best any re-implementation can be held to), and both times.

    python bench/cluster_agreement.py .bench/lfw --sizes 2000 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import time

import hdbscan
import numpy as np
import pyarrow.parquet as pq
from sklearn.metrics import adjusted_rand_score

from facesieve.cluster.hierarchy import hdbscan_knn


def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    nb = np.argpartition(-s, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(s, nb, 1), axis=1, kind="stable")
    nb = np.take_along_axis(nb, order, 1)
    return nb, np.take_along_axis(s, nb, 1).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", help="embed output root")
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=32)
    args = ap.parse_args()
    t = pq.read_table(f"{args.out}/faces", columns=["embedding"])
    emb = np.asarray(t["embedding"].combine_chunks().flatten()).reshape(-1, 512).astype(np.float64)
    print("faces  mcs ms | ARI knn-vs-exact | ARI exact-vs-shuffled-exact | exact s | knn s")
    for n in args.sizes:
        for mcs, ms in ((3, 2), (5, 5)):
            ours, selfs, t_ex, t_kn = [], [], [], []
            for r in range(args.repeats):
                rng = np.random.default_rng(r)
                x = emb[rng.choice(len(emb), n, replace=False)]
                t0 = time.perf_counter()
                ref = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit(x).labels_
                t_ex.append(time.perf_counter() - t0)
                perm = rng.permutation(n)
                shuf = hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit(x[perm]).labels_
                back = np.empty_like(shuf)
                back[perm] = shuf
                nb, sims = knn(x, args.k)
                t0 = time.perf_counter()
                got = hdbscan_knn(nb, sims, mcs, ms).labels
                t_kn.append(time.perf_counter() - t0)
                ours.append(adjusted_rand_score(ref, got))
                selfs.append(adjusted_rand_score(ref, back))
            print(
                f"{n:5d} {mcs:4d} {ms:2d} | {np.median(ours):.3f} (min {min(ours):.3f}) | "
                f"{np.median(selfs):.3f} (min {min(selfs):.3f}) | {np.median(t_ex):.2f} | "
                f"{np.median(t_kn):.2f}"
            )


if __name__ == "__main__":
    main()
