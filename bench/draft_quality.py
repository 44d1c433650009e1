"""What reduced JPEG decoding costs in faces and embeddings, against a full decode.

For every photo of a set, faces are found and embedded twice with the default models: from the
full decode, and from a reduced one. Faces are matched by box overlap (IoU >= 0.5, boxes in
original pixels); the script prints, per set and mode, how many faces each side found, how many
match, and the cosine between matched faces' embeddings (median, 1st percentile, minimum).

Modes: ``draft`` is the default rule (``source.draft_decode``: detection on a decode whose longer
side stays >= det_size, faces under 224 px there cropped from a finer decode); ``half`` decodes
every JPEG at 1/2 and crops from that (a naive rule, for comparison).

    python bench/draft_quality.py [--images 1000]

Sets (../shared/data/faces): CelebA in-the-wild photos (<= 600 px) and every other photo there
with a longer side of at least 1,000 px.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from facesieve.config import Config
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import Face, FaceEngine
from facesieve.faces.stage import DRAFT_MARGIN

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
LIMITS = (40_000_000, 1 << 26)


def photo_sets(n: int) -> dict[str, list[Path]]:
    celeba = sorted((SHARED / "labeled" / "celeba_subset").rglob("*.jpg"))[:n]
    others = [
        p
        for p in sorted(SHARED.rglob("*.jpg"))
        if "lfw" not in p.parts and "celeba_subset" not in p.parts
    ]
    return {"celeba": celeba, "large": [p for p in others if max(Image.open(p).size) >= 1000][:n]}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area) if area > 0 else 0.0


def match(full: list[Face], reduced: list[Face]) -> list[tuple[Face, Face]]:
    """Greedy one-to-one matching by IoU >= 0.5, best pairs first."""
    pairs = sorted(
        ((iou(a.bbox, b.bbox), i, j) for i, a in enumerate(full) for j, b in enumerate(reduced)),
        reverse=True,
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for score, i, j in pairs:
        if score < 0.5 or i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((full[i], reduced[j]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is not present")
    cfg = Config().faces
    engine = FaceEngine(cfg, device="cpu")
    result: dict[str, dict[str, object]] = {}
    for name, paths in photo_sets(args.images).items():
        result[name] = {"photos": len(paths)}
        for mode in ("draft", "half"):
            faces_full = faces_reduced = reduced_photos = 0
            cosines: list[float] = []
            for path in paths:
                data = path.read_bytes()
                full = decode_image(data, *LIMITS)
                if full.pixels is None:
                    continue
                if mode == "draft":
                    dec = decode_image(data, *LIMITS, min_side=DRAFT_MARGIN * cfg.det_size)
                    source = data
                else:
                    dec = decode_image(data, *LIMITS, factor=2)
                    source = None  # crop from the half-size pixels
                assert dec.pixels is not None
                reduced_photos += dec.scale > 1
                a = engine.analyze([full.pixels])[0]
                b = engine.analyze([dec.pixels], [dec.scale], sources=[source])[0]
                faces_full += len(a)
                faces_reduced += len(b)
                cosines += [float(x.embedding @ y.embedding) for x, y in match(a, b)]
            cos = np.asarray(cosines) if cosines else np.ones(1)
            result[name][mode] = {
                "photos_reduced": int(reduced_photos),
                "faces_full": faces_full,
                "faces_reduced": faces_reduced,
                "faces_in_both": len(cosines),
                "cosine_median": round(float(np.median(cos)), 4),
                "cosine_p1": round(float(np.percentile(cos, 1)), 4),
                "cosine_min": round(float(cos.min()), 4),
            }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
