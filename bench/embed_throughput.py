"""Images/s of `facesieve embed` against a naive one-image-at-a-time loop on the same images.

The baseline is how most scripts do it: decode one image, letterbox it to the usual 640x640
detector input, run the detector on a batch of one, then align and embed each face one by one,
with onnxruntime and the same two models. facesieve runs its default configuration (Ray runner,
one worker per CPU, the detector input sized to the image, batched inference). Each side runs
``--repeats`` times, alternating; medians and their ratio are printed.

    python bench/embed_throughput.py [--images 1000] [--repeats 3] [--source DIR]

With no --source it takes the first N images of ../shared/data/faces/labeled/lfw (LFW-sized
250x250 JPEGs); without that folder it falls back to the generated demo dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facesieve.config import Config
from facesieve.faces import scrfd
from facesieve.faces.align import align_face
from facesieve.faces.backends import OrtBackend
from facesieve.faces.decode import decode_image
from facesieve.faces.model_pack import ModelPack
from facesieve.runner.pipeline import run_embed

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "labeled" / "lfw"


def pick_images(source: Path | None, n: int, work: Path) -> Path:
    """A folder-per-identity copy of the first ``n`` images (sorted): both sides read the same."""
    if source is None and not LFW.is_dir():
        from facesieve.cli.demo import build_demo_data

        return build_demo_data(work / "demo")
    root = source or LFW
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:n]
    dest = work / "images"
    for f in files:
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return dest


def naive_loop(images: list[Path], pack: ModelPack) -> tuple[float, int]:
    """One image at a time at 640x640, onnxruntime's default session (every core, spinning
    threads), full-size decoding; returns (seconds, faces)."""
    det, rec = OrtBackend(pack.detector, spin=True), OrtBackend(pack.recognizer, spin=True)
    faces = 0
    start = time.perf_counter()
    for path in images:
        dec = decode_image(path.read_bytes(), 40_000_000, 1 << 26)
        if dec.pixels is None:
            continue
        canvas, scale = scrfd.letterbox(dec.pixels, 640)
        found = scrfd.decode(det.run(scrfd.to_input([canvas])), 0, 640, scale, 0.5, 0.4)
        for lm in found.landmarks:
            crop = align_face(dec.pixels, lm).astype(np.float32)
            x = ((crop - 127.5) / 127.5).transpose(2, 0, 1)[None]
            emb = rec.run(np.ascontiguousarray(x))[0][0]
            emb /= np.linalg.norm(emb)
            faces += 1
    return time.perf_counter() - start, faces


def facesieve_run(src: Path, out: Path, cfg: Config) -> tuple[float, float, int]:
    """Returns (wall seconds incl. Ray start, the job's own images/s, faces)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = run_embed(str(src), str(out), cfg, show_progress=False)
    return (
        time.perf_counter() - start,
        result.info["throughput"]["images_per_s"],
        int(result.steps["embed"].totals.get("faces", 0)),
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", type=Path)
    ap.add_argument("--runner", choices=["ray", "local"], default="ray")
    ap.add_argument("--shard-size", type=int, help="default: the config's (1,000 files)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="fs-bench-"))
    try:
        src = pick_images(args.source, args.images, work)
        files = sorted(p for p in src.rglob("*") if p.is_file())
        pack = ModelPack.resolve()
        cfg = Config().with_overrides("source", shard_size=args.shard_size)  # None: default
        cfg = cfg.with_overrides("run", runner=args.runner, device="cpu").validate()
        naive, ours, ours_job, faces = [], [], [], {}
        for _ in range(args.repeats):
            t, faces["naive"] = naive_loop(files, pack)
            naive.append(len(files) / t)
            t, rate, faces["facesieve"] = facesieve_run(src, work / "out", cfg)
            ours.append(len(files) / t)
            ours_job.append(rate)
        result = {
            "images": len(files),
            "cpus": os.cpu_count(),
            "runner": args.runner,
            "shard_size": cfg.source.shard_size,
            "naive_images_per_s": [round(x, 1) for x in naive],
            "facesieve_images_per_s_wall": [round(x, 1) for x in ours],
            "facesieve_images_per_s_in_job": [round(x, 1) for x in ours_job],
            "median_naive": round(statistics.median(naive), 1),
            "median_facesieve_wall": round(statistics.median(ours), 1),
            "ratio_wall": round(statistics.median(ours) / statistics.median(naive), 2),
            "ratio_in_job": round(statistics.median(ours_job) / statistics.median(naive), 2),
            "faces": faces,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
