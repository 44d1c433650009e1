"""Peers on the same noisy data as `facesieve eval`: plain hdbscan and cleanlab.

Reads a finished eval work folder (OUT/truth.json, OUT/out) and compares, on the very same
embeddings (each image's subject face, as chosen by facesieve):
- the exact ``hdbscan`` library on the raw 512-d embeddings (BCubed F and time), against
  facesieve's kNN-graph HDBSCAN;
- ``cleanlab.filter.find_label_issues`` with out-of-fold probabilities from a kNN classifier on the
  embeddings (cleanlab's recommended recipe for embeddings), against facesieve's ``mislabeled``.

    python bench/peers.py /tmp/ev1          # after: facesieve eval ... --out /tmp/ev1
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from facesieve.evaluate.metrics import bcubed, detection

log = logging.getLogger("bench.peers")


def main(work: str) -> None:
    w = Path(work)
    truth = json.loads((w / "truth.json").read_text())["files"]
    root = str((w / "data").resolve()) + "/"
    actions = pq.read_table(w / "out" / "report" / "actions.parquet").to_pylist()
    faces = pq.read_table(w / "out" / "faces", columns=["face_id", "image_id", "embedding"])
    clusters = pq.read_table(w / "out" / "clusters" / "faces.parquet").to_pylist()
    cluster_of = {c["face_id"]: c["cluster_id"] for c in clusters}
    emb_of = dict(zip(faces["face_id"].to_pylist(), range(faces.num_rows), strict=True))
    emb_all = np.asarray(faces["embedding"].combine_chunks().flatten()).reshape(-1, 512)
    # subject face of each kept source image: the face whose cluster the action row reports
    by_image: dict[str, list[str]] = {}
    for f in faces["face_id"].to_pylist():
        by_image.setdefault(f.split("#")[0], []).append(f)
    rows, x, true, given, ours_c = [], [], [], [], []
    for r in actions:
        rel = r["uri"][len(root) :]
        t = truth.get(rel)
        if t is None or t["kind"] not in ("original", "moved") or r["cluster_id"] is None:
            continue
        cands = [f for f in by_image.get(r["image_id"], []) if cluster_of[f] == r["cluster_id"]]
        face = cands[0] if cands else by_image[r["image_id"]][0]
        rows.append(rel)
        x.append(emb_all[emb_of[face]])
        true.append(t["true_label"])
        given.append(r["label"])
        ours_c.append(r["cluster_id"])
    x = np.asarray(x, np.float64)
    moved = {p for p, g, t in zip(rows, given, true, strict=True) if g != t}
    ours = {r["uri"][len(root) :] for r in actions if "mislabeled" in r["reasons"]}
    result = {"faces": len(rows), "moved": len(moved)}
    result["facesieve_bcubed"] = bcubed(np.array(true), np.array(ours_c)).__dict__
    result["facesieve_mislabeled"] = detection(ours & set(rows), moved).__dict__

    import hdbscan

    t0 = time.perf_counter()
    labels = hdbscan.HDBSCAN(min_cluster_size=3, min_samples=2).fit(x).labels_
    result["hdbscan_raw"] = {
        "seconds": round(time.perf_counter() - t0, 1),
        "bcubed": bcubed(np.array(true), labels).__dict__,
    }

    from cleanlab.filter import find_label_issues
    from sklearn.model_selection import cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    t0 = time.perf_counter()
    names = sorted(set(given))
    y = np.array([names.index(g) for g in given])
    keep = np.bincount(y)[y] >= 3  # cross-validation needs a few examples per class
    probs = cross_val_predict(
        KNeighborsClassifier(10, metric="cosine", weights="distance"),
        x[keep],
        y[keep],
        cv=3,
        method="predict_proba",
    )
    issues = find_label_issues(np.unique(y[keep], return_inverse=True)[1], probs)
    flagged = {p for p, i in zip(np.array(rows)[keep], issues, strict=True) if i}
    result["cleanlab"] = {
        "seconds": round(time.perf_counter() - t0, 1),
        "mislabeled": detection(flagged, moved).__dict__,
        "faces_scored": int(keep.sum()),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(sys.argv[1])
