"""LFW verification accuracy of `facesieve embed`, on the official 10-fold View 2 protocol.

Runs the embed job over ../shared/data/faces/labeled/lfw (resumable: a rerun reuses finished
shards), takes each image's subject (the face nearest the image centre: LFW images are centred on
the labeled person), and scores the 6,000 pairs of meta/lfw_pairs.txt. For each fold the threshold
is picked on the other nine and accuracy measured on the held-out one.

    python bench/lfw_verify.py [--out .bench/lfw] [--runner ray|local] [--flip]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from facesieve.config import Config
from facesieve.faces.subject import central_faces
from facesieve.runner.pipeline import run_embed

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """(relative image a, relative image b, same person) for every pair, fold by fold."""
    lines = path.read_text().split("\n")
    folds, per = (int(x) for x in lines[0].split())
    pairs = []
    for line in lines[1 : 1 + 2 * folds * per]:
        p = line.split("\t")
        if len(p) == 3:
            pairs.append(
                (f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[0]}/{p[0]}_{int(p[2]):04d}.jpg", True)
            )
        else:
            pairs.append(
                (f"{p[0]}/{p[0]}_{int(p[1]):04d}.jpg", f"{p[2]}/{p[2]}_{int(p[3]):04d}.jpg", False)
            )
    return pairs


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """Threshold maximising accuracy: midpoints between consecutive sorted scores."""
    order = np.sort(np.unique(scores))
    candidates = np.concatenate(
        [[order[0] - 1e-6], (order[1:] + order[:-1]) / 2, [order[-1] + 1e-6]]
    )
    acc = [((scores >= t) == same).mean() for t in candidates]
    return float(candidates[int(np.argmax(acc))])


def kfold_accuracy(
    scores: np.ndarray, same: np.ndarray, folds: int = 10
) -> tuple[list[float], list[float]]:
    """Per-fold accuracies and thresholds, each threshold chosen on the other folds."""
    idx = np.arange(len(scores)) // (len(scores) // folds)
    accs, thresholds = [], []
    for k in range(folds):
        t = best_threshold(scores[idx != k], same[idx != k])
        accs.append(float(((scores[idx == k] >= t) == same[idx == k]).mean()))
        thresholds.append(t)
    return accs, thresholds


def subject_embeddings(out: Path, root: Path) -> dict[str, np.ndarray]:
    """Relative image path -> embedding of the image's subject (the face nearest its centre)."""
    images = pq.read_table(out / "images", columns=["image_id", "uri", "width", "height"])
    faces = pq.read_table(out / "faces", columns=["image_id", "bbox", "embedding"])
    uris = dict(zip(*(images.column(c).to_pylist() for c in ("image_id", "uri")), strict=True))
    embs = np.stack(faces.column("embedding").to_numpy(zero_copy_only=False))
    prefix = str(root.resolve()) + "/"
    return {
        uris[i].removeprefix(prefix): embs[row] for i, row in central_faces(images, faces).items()
    }


def lfw_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments every LFW benchmark takes: where LFW and its View 2 pairs are."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--lfw", type=Path, default=SHARED / "labeled" / "lfw")
    ap.add_argument("--pairs", type=Path, default=SHARED / "meta" / "lfw_pairs.txt")
    return ap


def main() -> int:
    ap = lfw_parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path(".bench/lfw"))
    ap.add_argument("--runner", choices=["ray", "local"], default="ray")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--det-size", type=int, default=640)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.lfw.is_dir():
        print(f"LFW not found at {args.lfw}; nothing to measure", file=sys.stderr)
        return 2
    cfg = Config().with_overrides("faces", flip=args.flip, det_size=args.det_size)
    cfg = cfg.with_overrides("run", runner=args.runner, device=args.device).validate()
    t0 = time.perf_counter()
    job = run_embed(str(args.lfw), str(args.out), cfg)
    embed_s = time.perf_counter() - t0
    emb = subject_embeddings(args.out, args.lfw)
    pairs = read_pairs(args.pairs)
    missing = sum(1 for a, b, _ in pairs if a not in emb or b not in emb)
    scores = np.array(
        [float(emb[a] @ emb[b]) if a in emb and b in emb else -1.0 for a, b, _ in pairs]
    )
    same = np.array([s for _, _, s in pairs])
    accs, thresholds = kfold_accuracy(scores, same)
    result = {
        "images": job.steps["embed"].totals.get("images"),
        "status": job.steps["embed"].totals.get("status"),
        "embed_seconds_this_run": round(embed_s, 1),
        "images_per_s_this_run": job.info["throughput"]["images_per_s"],
        "pairs": len(pairs),
        "pairs_missing_a_face": missing,
        "accuracy_mean": round(float(np.mean(accs)), 5),
        "accuracy_std": round(float(np.std(accs)), 5),
        "threshold_mean": round(float(np.mean(thresholds)), 4),
        "flip": args.flip,
        "det_size": args.det_size,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
