"""Which face `facesieve verify` compares, rule by rule, on LFW's official View 2 pairs.

Embeds only the images named in meta/lfw_pairs.txt with the FaceEngine in-process (every face of
each image, default settings as `facesieve verify` uses them), caches the faces in --cache, then
for each subject rule (``faces.subject.pick_face``: subject, largest, central) counts the pairs
judged right at the default threshold (``faces.verify.DEFAULT_THRESHOLD``) and lists the pairs
where the rules choose different faces. A rerun reuses the cache.

    python -m bench.lfw_subject_rule [--cache .bench/lfw_subject/faces.npz] [--threads 2]

(run from the repository root: it imports ``bench.lfw_verify``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from bench.lfw_verify import lfw_parser, read_pairs
from facesieve.config import FaceConfig
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import FaceEngine
from facesieve.faces.subject import RULES, pick_face
from facesieve.faces.verify import DEFAULT_THRESHOLD

log = logging.getLogger("bench.lfw_subject_rule")
BATCH = 64


def embed_faces(lfw: Path, names: list[str], threads: int) -> dict[str, np.ndarray]:
    """Flat arrays of every face of every image: image row, box, score, embedding, sizes."""
    engine = FaceEngine(FaceConfig(), device="cpu", threads=threads)
    rows, boxes, dets, embs, sizes = [], [], [], [], []
    for start in range(0, len(names), BATCH):
        chunk = names[start : start + BATCH]
        pixels = []
        for name in chunk:
            data = (lfw / name).read_bytes()
            dec = decode_image(data, 40_000_000, len(data))
            if dec.pixels is None:
                raise RuntimeError(f"{name}: {dec.status}: {dec.error}")
            pixels.append(dec.pixels)
            sizes.append(dec.pixels.shape[:2][::-1])  # width, height
        for j, faces in enumerate(engine.analyze(pixels)):
            for f in faces:
                rows.append(start + j)
                boxes.append(f.bbox)
                dets.append(np.nan if f.det_score is None else f.det_score)
                embs.append(f.embedding)
        log.warning("embedded %d / %d images", min(start + BATCH, len(names)), len(names))
    return {
        "names": np.array(names),
        "sizes": np.array(sizes, np.float64),
        "rows": np.array(rows, np.int64),
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "dets": np.array(dets, np.float64),
        "embs": np.array(embs, np.float32).reshape(-1, 512),
    }


def choices(cache: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """rule -> image name -> face row (in the cache) that the rule picks."""
    out: dict[str, dict[str, int]] = {r: {} for r in RULES}
    rows = cache["rows"]
    starts = np.searchsorted(rows, np.arange(len(cache["names"]) + 1))
    for i, name in enumerate(cache["names"]):
        lo, hi = starts[i], starts[i + 1]
        if lo == hi:
            continue
        w, h = cache["sizes"][i]
        for rule in RULES:
            out[rule][str(name)] = int(lo) + pick_face(
                rule, cache["boxes"][lo:hi], cache["dets"][lo:hi], w, h
            )
    return out


def score_rules(
    cache: dict[str, np.ndarray], pairs: list[tuple[str, str, bool]], threshold: float
) -> dict:
    """Pairs right per rule, and every pair where the rules do not all choose the same faces
    (face numbers within each image, detection order as ``--face N`` counts them)."""
    picked = choices(cache)
    embs = cache["embs"]
    first = np.searchsorted(cache["rows"], np.arange(len(cache["names"])))
    first_row = {str(n): int(r) for n, r in zip(cache["names"], first, strict=True)}
    cos: dict[str, list[float]] = {}
    right: dict[str, list[bool]] = {}
    for rule in RULES:
        sel = picked[rule]
        cos[rule] = [
            float(embs[sel[a]] @ embs[sel[b]]) if a in sel and b in sel else -1.0
            for a, b, _ in pairs
        ]
        right[rule] = [(c >= threshold) == p[2] for c, p in zip(cos[rule], pairs, strict=True)]
    differing = []
    for k, (a, b, same) in enumerate(pairs):
        faces = {r: tuple(picked[r].get(x, -1) - first_row[x] for x in (a, b)) for r in RULES}
        if len(set(faces.values())) > 1:
            per_rule = {
                r: {"faces": list(faces[r]), "cosine": round(cos[r][k], 4), "right": right[r][k]}
                for r in RULES
            }
            differing.append({"pair": k, "a": a, "b": b, "same": same, **per_rule})
    return {
        "right": {r: int(sum(right[r])) for r in RULES},
        "differing": len(differing),
        "differing_pairs": differing,
    }


def main() -> int:
    ap = lfw_parser(__doc__)
    ap.add_argument("--cache", type=Path, default=Path(".bench/lfw_subject/faces.npz"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if not args.lfw.is_dir():
        log.error("LFW not found at %s; nothing to measure", args.lfw)
        return 2
    pairs = read_pairs(args.pairs)
    t0 = time.perf_counter()
    if args.cache.is_file():
        cache = dict(np.load(args.cache))
    else:
        names = sorted({p for a, b, _ in pairs for p in (a, b)})
        cache = embed_faces(args.lfw, names, args.threads)
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.cache, **cache)
    result = {
        "images": len(cache["names"]),
        "faces": len(cache["rows"]),
        "pairs": len(pairs),
        "threshold": args.threshold,
        "embed_seconds": round(time.perf_counter() - t0, 1),
        **score_rules(cache, pairs, args.threshold),
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
