"""Preprocessing per core: decode, detector input and alignment warps on one thread, no models.

The embed step's preprocessing threads do this work for every image (plus the photo descriptor,
timed separately); on a GPU node it is what limits images/s. Landmarks come from one untimed
detector pass, then each image is timed through exactly what a preprocessing thread runs:
``decode_image`` (full size, or reduced as ``source.draft_decode`` does), ``FaceEngine.prepare``
(letterbox + normalised detector input) and ``align_detections`` (warps; small faces of a
reduced decode are cropped from a finer decode, which is timed too).

    python bench/preprocess.py [--images 1000] [--repeats 3] [--models]

``--models`` also times the two models on one thread (the detector on the set's own input sides
in batches of 16, the recognizer in batches of 64; the fastest of the repeats, which a shared
machine disturbs least) and prints each set's model cost per image in core-milliseconds: with
preprocessing free, 1000 * cores / that is the most images/s the models allow.

Sets (from ../shared/data/faces): LFW 250x250 JPEGs, CelebA in-the-wild photos (<= 600 px), and
every other photo there with a longer side of at least 1,000 px. Modes: ``full`` (no reduction),
``draft`` (the default rule: the longer side stays >= det_size), ``half`` (always 1/2, for
comparison). Prints JSON: images/s on one core per set and mode, medians of the repeats.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facesieve.config import Config
from facesieve.faces.decode import Decoded, decode_image
from facesieve.faces.engine import FaceEngine, align_detections
from facesieve.faces.photo import photo_descriptor
from facesieve.faces.stage import DRAFT_MARGIN

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
LIMITS = (40_000_000, 1 << 26)


def image_sets(n: int) -> dict[str, list[bytes]]:
    """Encoded files of each set, read into memory (reading is not preprocessing)."""
    lfw = sorted((SHARED / "labeled" / "lfw").rglob("*.jpg"))[:n]
    celeba = sorted((SHARED / "labeled" / "celeba_subset").rglob("*.jpg"))[:n]
    others = [
        p
        for p in sorted(SHARED.rglob("*.jpg"))
        if "lfw" not in p.parts and "celeba_subset" not in p.parts
    ]
    large = [p for p in others if max(Image.open(p).size) >= 1000][:n]
    return {
        k: [p.read_bytes() for p in v]
        for k, v in (("lfw", lfw), ("celeba", celeba), ("large", large))
    }


def decoder(mode: str, det_size: int):
    min_side = DRAFT_MARGIN * det_size if mode == "draft" else 0
    factor = 2 if mode == "half" else 0

    def decode(data: bytes) -> Decoded:
        return decode_image(data, *LIMITS, min_side=min_side, factor=factor)

    return decode


def model_cost(engine: FaceEngine, prepared: list, faces: int, repeats: int) -> dict:
    """Core-ms per image of the detector (at each image's input side) and the recognizer."""
    det_best = rec_best = float("inf")
    crops = np.zeros((64, 112, 112, 3), np.uint8)
    for _ in range(repeats):
        start = time.perf_counter()
        engine.detect_prepared(prepared)
        det_best = min(det_best, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(4):
            engine.embed(crops)
        rec_best = min(rec_best, (time.perf_counter() - start) / 256)
    det = det_best / len(prepared) * 1e3
    rec = rec_best * 1e3 * faces / len(prepared)
    return {
        "detector": round(det, 2),
        "recognizer": round(rec, 2),
        "faces_per_image": round(faces / len(prepared), 3),
        "total": round(det + rec, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is not present")
    cv2.setNumThreads(1)  # one core: what one preprocessing thread does
    cfg = Config().faces
    engine = FaceEngine(cfg, device="cpu", threads=1)
    result: dict[str, dict[str, object]] = {}
    for name, files in image_sets(args.images).items():
        result[name] = {"images": len(files)}
        for mode in ("full", "draft", "half"):
            decode = decoder(mode, cfg.det_size)
            decoded = [decode(d) for d in files]
            ok = [(d, x) for d, x in zip(files, decoded, strict=True) if x.pixels is not None]
            prepared = [
                engine.prepare(x.pixels, x.scale, d if x.scale > 1 else None) for d, x in ok
            ]
            detections = engine.detect_prepared(prepared)  # untimed: landmarks for the warps
            rates, desc_rates = [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for (data, _), det in zip(ok, detections, strict=True):
                    dec = decode(data)
                    item = engine.prepare(dec.pixels, dec.scale, data if dec.scale > 1 else None)
                    align_detections(item, det)
                rates.append(len(ok) / (time.perf_counter() - start))
                start = time.perf_counter()
                for _, x in ok:
                    photo_descriptor(x.pixels)
                desc_rates.append(len(ok) / (time.perf_counter() - start))
            if args.models and mode == "full":
                result[name]["model_core_ms_per_image"] = model_cost(
                    engine, prepared, sum(len(d) for d in detections), args.repeats
                )
            result[name][mode] = {
                "images_per_s_per_core": round(statistics.median(rates), 1),
                "runs": [round(r, 1) for r in rates],
                "photo_descriptor_per_s": round(statistics.median(desc_rates), 1),
                "reduced": sum(x.scale > 1 for _, x in ok),
                "faces": sum(len(d) for d in detections),
            }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
