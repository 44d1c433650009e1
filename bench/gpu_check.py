"""The GPU path for real: fp16 torch-on-CUDA parity with onnxruntime, and images/s per GPU.

Runs on a machine with a CUDA GPU (the project's lent H100 in development). Needs a folder of
LFW-sized JPEGs (``--images``) and the two ONNX files (``--detector``/``--recognizer``); Ray is
not needed: several in-process runners over disjoint halves of the data stand in for several
actors sharing one GPU. Prints one JSON document (also written to ``--json-out``).

    python bench/gpu_check.py --images DIR --detector scrfd.onnx --recognizer w600k_mbf.onnx
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from facesieve.config import Config, FaceConfig
from facesieve.faces.backends import TorchBackend
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import FaceEngine
from facesieve.faces.verify import largest_face
from facesieve.runner.pipeline import run_embed


def parity(files: list[Path], faces_cfg: FaceConfig) -> dict:
    cpu, gpu = FaceEngine(faces_cfg, "cpu"), FaceEngine(faces_cfg, "cuda")
    cosines, same_count = [], 0
    for path in files:
        px = decode_image(path.read_bytes(), 10**8, 10**8).pixels
        a, b = cpu.analyze([px])[0], gpu.analyze([px])[0]
        same_count += len(a) == len(b)
        if a and b:
            cosines.append(float(largest_face(a).embedding @ largest_face(b).embedding))
    return {
        "images": len(files),
        "same_face_count": same_count,
        "cosine_min": round(min(cosines), 5),
        "cosine_median": round(statistics.median(cosines), 5),
        "backend": gpu.detector.name,
    }


def model_speed(faces_cfg: FaceConfig) -> dict:
    import torch

    from facesieve.faces.model_pack import ModelPack

    pack = ModelPack.resolve(faces_cfg.detector, faces_cfg.recognizer)
    out = {}
    for name, path, shape in (
        ("recognizer_faces_per_s_b256", pack.recognizer, (256, 3, 112, 112)),
        ("detector_images_per_s_256px_b64", pack.detector, (64, 3, 256, 256)),
        ("detector_images_per_s_640px_b16", pack.detector, (16, 3, 640, 640)),
    ):
        backend = TorchBackend(path, "cuda")
        x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
        for _ in range(5):
            backend.run(x)
        times = []
        for _ in range(20):
            torch.cuda.synchronize()
            t = time.perf_counter()
            backend.run(x)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        out[name] = round(shape[0] / statistics.median(times), 1)
    return out


def embed_once(src: Path, out: Path, cfg: Config) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    r = run_embed(str(src), str(out), cfg, show_progress=False)
    return {
        "images": r.steps["embed"].totals["images"],
        "faces": r.steps["embed"].totals.get("faces", 0),
        "wall_s": round(time.perf_counter() - t, 2),
        "in_job_images_per_s": r.info["throughput"]["images_per_s"],
    }


def split(src: Path, parts: int, work: Path, copies: int = 1) -> list[Path]:
    """Identity folders dealt round-robin into ``parts`` input roots (hard links, no copies of
    bytes); ``copies`` > 1 repeats the set under new names for a longer steady state."""
    roots = [work / f"part{i}" for i in range(parts)]
    idents = sorted(p for p in src.iterdir() if p.is_dir())
    for i, (c, ident) in enumerate((c, d) for c in range(copies) for d in idents):
        dest = roots[i % parts] / f"{ident.name}_{c}"
        dest.mkdir(parents=True)
        for f in ident.iterdir():
            os.link(f, dest / f.name)
    return roots


def concurrent(roots: list[Path], work: Path, base_config: Path, env: dict | None = None) -> dict:
    """One process per root at once, each with its share of the CPU cores."""
    cfg = yaml.safe_load(base_config.read_text())
    cfg["run"]["threads_per_worker"] = max(1, (os.cpu_count() or 1) // len(roots))
    config_file = work / "cfg.yaml"
    config_file.write_text(yaml.safe_dump(cfg))
    procs = []
    t = time.perf_counter()
    for i, root in enumerate(roots):
        cmd = [
            sys.executable,
            "-m",
            "facesieve.cli.main",
            "embed",
            str(root),
            "--out",
            str(work / f"out{i}"),
            "--config",
            str(config_file),
            "-q",
        ]
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        )
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t
    infos = [json.loads((work / f"out{i}" / "run.json").read_text()) for i in range(len(roots))]
    images = sum(i["steps"]["embed"]["totals"]["images"] for i in infos)
    busiest = max(i["steps"]["embed"]["seconds"] for i in infos)
    return {
        "processes": len(roots),
        "exit_codes": codes,
        "images": images,
        "wall_s": round(wall, 2),
        "images_per_s_wall": round(images / wall, 1),
        "images_per_s_in_job": round(images / busiest, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--detector", required=True)
    ap.add_argument("--recognizer", required=True)
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--only-concurrent", action="store_true", help="skip parity and single runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    files = sorted(args.images.rglob("*.jpg"))
    faces_cfg = FaceConfig(detector=args.detector, recognizer=args.recognizer)
    report: dict = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "images": len(files),
    }
    if not args.only_concurrent:
        report["parity_fp16_vs_onnxruntime"] = parity(files[:200], faces_cfg)
        report["model_only"] = model_speed(faces_cfg)
    work = Path(tempfile.mkdtemp(prefix="fs-gpu-"))
    runs = {}
    from facesieve.config import load_config

    for name, batches in (("b16_64", {"det_batch": 16, "embed_batch": 64}), ("auto", {})):
        faces = {"detector": args.detector, "recognizer": args.recognizer, **batches}
        cfg_dict = {
            "faces": faces,
            "run": {"runner": "local", "device": "cuda"},
            "source": {"shard_size": 500},
        }
        cfg_file = work / f"cfg_{name}.yaml"
        cfg_file.write_text(yaml.safe_dump(cfg_dict))
        cfg = load_config(cfg_file)
        if not args.only_concurrent:
            runs[f"one_process_{name}_cold"] = embed_once(args.images, work / "single", cfg)
            runs[f"one_process_{name}_warm"] = embed_once(args.images, work / "single", cfg)
    for parts, bench in ((1, "0"), (1, "1"), (2, "0"), (4, "0")):
        pw = work / f"split{parts}_{bench}"
        roots = split(args.images, parts, pw, copies=4)
        env = {"FACESIEVE_CUDNN_BENCHMARK": bench}
        key = f"{parts}_fresh_processes_cudnn_benchmark_{bench}"
        runs[key] = concurrent(roots, pw, work / "cfg_auto.yaml", env)
    if not args.only_concurrent:
        cpu_cfg = load_config(work / "cfg_auto.yaml").with_overrides("run", device="cpu")
        runs["cpu_onnxruntime_one_process_all_cores"] = embed_once(
            args.images, work / "cpu", cpu_cfg
        )
    report["embed"] = runs
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
