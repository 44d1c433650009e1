"""``facesieve``: argument parsing and rendering only; the work happens in the library.

Exit codes: 0 everything succeeded; 1 some shards failed after retries (the rest is written);
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from facesieve import __version__
from facesieve.config import Config, load_config
from facesieve.errors import ConfigError, FacesieveError, ModelError

log = logging.getLogger("facesieve")

EPILOG = """\
INPUT and OUT are local paths or s3://bucket/prefix URIs. S3 credentials come from the standard
AWS chain (environment, ~/.aws, instance role); --s3-endpoint or AWS_ENDPOINT_URL selects an
S3-compatible store. Exit codes: 0 success, 1 some shards failed (others written), 2 usage error.
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", help="YAML config with sections source, faces, run")
    g.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="inference device (default auto)"
    )
    g.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    g.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    g.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bar")


def _add_models(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models")
    g.add_argument(
        "--detector", metavar="ONNX", help="SCRFD *_bnkps ONNX file (default: bundled SCRFD-500M)"
    )
    g.add_argument(
        "--recognizer",
        metavar="ONNX",
        help="ArcFace 112x112 ONNX file (default: bundled MobileFaceNet)",
    )
    g.add_argument(
        "--det-size", type=int, metavar="PX", help="largest detector input side (default 640)"
    )
    g.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each embedding with the mirrored face's (default off)",
    )


def _add_job(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input and execution")
    g.add_argument(
        "--layout",
        choices=["auto", "webdataset", "folders", "flat"],
        help="input layout (default auto-detected)",
    )
    g.add_argument(
        "--shard-size",
        type=int,
        metavar="N",
        help="images per shard for folders/flat (default 1000)",
    )
    g.add_argument(
        "--aligned",
        choices=["auto", "yes", "no"],
        help="treat images as aligned 112x112 crops: auto = when exactly 112x112 (default)",
    )
    g.add_argument(
        "--runner", choices=["ray", "local"], help="ray (default) or local in-process execution"
    )
    g.add_argument(
        "--ray-address", metavar="ADDR", help="join a Ray cluster (default: start a local runtime)"
    )
    g.add_argument(
        "--workers", type=int, metavar="N", help="worker actors (default: one per CPU, two per GPU)"
    )
    g.add_argument(
        "--retries", type=int, metavar="N", help="extra attempts for a failing shard (default 2)"
    )
    g.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint URL")


def _add_cluster(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clustering")
    g.add_argument(
        "--min-cluster-size",
        type=int,
        metavar="N",
        help="smallest group of faces that counts as an identity (default 3)",
    )
    g.add_argument(
        "--min-samples",
        type=int,
        metavar="N",
        help="neighbours behind a face's core distance (default 2)",
    )
    g.add_argument(
        "--mode",
        choices=["auto", "labeled", "unlabeled"],
        help="labeled: compare clusters with labels; unlabeled: clusters are the "
        "identities (default auto: labeled when most images have a label)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facesieve",
        description="Clean large face-image datasets: detect, align and embed faces, at scale.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"facesieve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "embed",
        help="shards -> images/ + faces/ Parquet (skips done shards)",
        description="Detect, align and embed every face of INPUT into OUT/images and "
        "OUT/faces, one Parquet file per shard. Finished shards are skipped; shards "
        "whose content, config or models changed are redone.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input", metavar="INPUT", help="folder or s3://bucket/prefix with tar shards or images"
    )
    p.add_argument(
        "--out", required=True, metavar="OUT", help="output root (folder or s3://bucket/prefix)"
    )
    _add_job(p)
    _add_models(p)
    _add_common(p)

    p = sub.add_parser(
        "verify",
        help="1:1: same person or not, with the cosine",
        description="Compare the largest face of IMAGE_A with the largest face of IMAGE_B. "
        "Prints the cosine similarity and 'same' when it reaches the threshold.",
    )
    p.add_argument("image_a", metavar="IMAGE_A")
    p.add_argument("image_b", metavar="IMAGE_B")
    p.add_argument(
        "--threshold", type=float, help="cosine at or above which faces match (default: LFW-tuned)"
    )
    _add_models(p)
    _add_common(p)

    p = sub.add_parser(
        "index",
        help="IVF-PQ index over OUT/faces and the kNN graph",
        description="Build or extend the FAISS index over OUT/faces (parameters from the number of "
        "vectors and --memory; see docs/INDEX.md), then write the kNN graph OUT/index/knn.parquet. "
        "Only new or changed faces shards are added; the index is retrained when the data has "
        "grown past index.retrain_factor.",
    )
    p.add_argument("out", metavar="OUT", help="output root of `facesieve embed`")
    p.add_argument("--memory", metavar="SIZE", help="index memory budget, e.g. 8G (default 8G)")
    p.add_argument(
        "--factory", metavar="STR", help="FAISS index_factory string overriding the rule"
    )
    p.add_argument("--nprobe", type=int, metavar="N", help="IVF lists visited per query")
    p.add_argument(
        "--knn-k", type=int, metavar="K", help="neighbours per face in the kNN graph (0: none)"
    )
    p.add_argument("--merge", action="store_true", help="also write all shards as one index file")
    p.add_argument("--runner", choices=["ray", "local"], help="ray (default) or local in-process")
    p.add_argument("--ray-address", metavar="ADDR", help="join a Ray cluster")
    p.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint URL")
    _add_common(p)

    p = sub.add_parser(
        "search",
        help="1:N: nearest faces in the index",
        description="Detect and embed the faces of IMAGE, search the index of OUT and print, for "
        "each face (largest first), the K most similar indexed faces with uri, label, face_id and "
        "exact cosine similarity.",
    )
    p.add_argument("out", metavar="OUT", help="output root with an index")
    p.add_argument("image", metavar="IMAGE", help="query photo")
    p.add_argument("-k", type=int, default=5, help="matches per query face (default 5)")
    p.add_argument("--nprobe", type=int, metavar="N", help="IVF lists visited per query")
    p.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint URL")
    _add_models(p)
    _add_common(p)

    p = sub.add_parser(
        "cluster",
        help="identities: HDBSCAN on the index's kNN graph",
        description="Cluster every indexed face into identities with HDBSCAN built on the kNN "
        "graph of `facesieve index` (no all-pairs matrix, so a million faces fit one machine). "
        "Writes OUT/clusters/faces.parquet and identities.parquet (docs/FORMATS.md).",
    )
    p.add_argument("out", metavar="OUT", help="output root with an index and kNN graph")
    _add_cluster(p)
    p.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint URL")
    _add_common(p)

    p = sub.add_parser(
        "clean",
        help="actions, summary and HTML report",
        description="Apply the cleaning rules (docs/CLEANING.md) to the embeddings, clusters and "
        "labels of OUT. Writes OUT/report/actions.parquet (+ .csv): one row per input image "
        "with action keep|drop|relabel|review and its reasons; summary.json; index.html.",
    )
    p.add_argument("out", metavar="OUT", help="output root with clusters")
    p.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint URL")
    _add_common(p)

    p = sub.add_parser(
        "run",
        help="all stages: embed, index, cluster, clean",
        description="Run every stage on INPUT into OUT. Each stage redoes only what is new or "
        "changed, so a second run with nothing new returns in seconds.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="folder or s3://bucket/prefix")
    p.add_argument("--out", required=True, metavar="OUT", help="output root")
    _add_job(p)
    _add_models(p)
    _add_cluster(p)
    _add_common(p)

    p = sub.add_parser(
        "eval",
        help="quality benchmark: inject known problems, score the pipeline",
        description="Copy labeled folder-per-identity datasets to OUT/data while injecting known "
        "problems (images moved to a wrong label, near-duplicate and exact copies, corrupt "
        "files, images without a face), run the whole pipeline on the copy and print precision "
        "and recall per reason and the BCubed and pairwise F-scores of the clustering. With "
        "several folders, labels are prefixed with each folder's name.",
    )
    p.add_argument("labeled", nargs="+", metavar="LABELED_DIR", help="folder-per-identity data")
    p.add_argument("--out", required=True, metavar="OUT", help="work folder (data copy, outputs)")
    p.add_argument(
        "--min-images",
        type=int,
        default=1,
        metavar="N",
        help="use identities with at least N images (default 1: all)",
    )
    p.add_argument(
        "--mislabel-rate",
        type=float,
        default=0.10,
        metavar="R",
        help="share of images moved to a wrong label (default 0.10)",
    )
    p.add_argument(
        "--near-dup-rate",
        type=float,
        default=0.03,
        metavar="R",
        help="share of images given a transformed copy (default 0.03)",
    )
    p.add_argument(
        "--exact-dup-rate",
        type=float,
        default=0.02,
        metavar="R",
        help="share of images given a byte-identical copy (default 0.02)",
    )
    p.add_argument(
        "--corrupt-rate",
        type=float,
        default=0.01,
        metavar="R",
        help="corrupt files added, as a share of images (default 0.01)",
    )
    p.add_argument(
        "--no-face-rate",
        type=float,
        default=0.01,
        metavar="R",
        help="images without a face added, as a share (default 0.01)",
    )
    p.add_argument(
        "--no-inject",
        action="store_true",
        help="copy nothing, inject nothing: report what is flagged in the data as is",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--runner", choices=["ray", "local"], help="ray (default) or local")
    _add_common(p)

    p = sub.add_parser(
        "demo",
        help="build demo data from bundled photos and run every stage on it",
        description="Builds a small labeled dataset (face crops from the photos bundled "
        "with the model pack, as identities, with augmented copies and a few broken "
        "files) under DIR/data, runs `run` on it into DIR/out and prints where the report is.",
    )
    p.add_argument(
        "--out",
        default="facesieve-demo",
        metavar="DIR",
        help="demo folder (default ./facesieve-demo)",
    )
    p.add_argument(
        "--runner", choices=["ray", "local"], help="ray (default) or local in-process execution"
    )
    _add_common(p)
    return parser


# Which flags override which config section (flags a subcommand lacks are simply absent).
_OVERRIDES = {
    "source": ("layout", "shard_size"),
    "faces": ("detector", "recognizer", "det_size", "flip", "aligned"),
    "run": ("runner", "ray_address", "device", "workers", "retries", "s3_endpoint"),
    "index": ("memory", "factory", "nprobe", "knn_k"),
    "cluster": ("min_cluster_size", "min_samples", "mode"),
}


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    for section, names in _OVERRIDES.items():
        cfg = cfg.with_overrides(section, **{n: getattr(args, n, None) for n in names})
    return cfg.validate()


def _setup_logging(args: argparse.Namespace) -> None:
    level = (
        logging.ERROR
        if args.quiet
        else [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    sys.stdout.write((json.dumps(data, indent=2) if args.json else text) + "\n")


def cmd_embed(args: argparse.Namespace) -> int:
    from facesieve.runner.job import run_embed

    result = run_embed(
        args.input, args.out, _config(args), show_progress=False if args.quiet else None
    )
    _emit(args, result.run_info, _embed_text(result.run_info))
    return result.exit_code


def _embed_text(info: dict[str, Any]) -> str:
    t, s, speed = info["totals"], info["shards"], info["throughput"]
    lines = [
        f"shards: {s['total']} total, {s['processed']} processed, {s['skipped']} already done, "
        f"{len(s['failed'])} failed",
        f"images: {t.get('images', 0)}  faces: {t.get('faces', 0)}  status: {t.get('status', {})}",
        f"throughput: {speed['images_per_s']} images/s over {speed['images']} new images",
        f"output: {info['output']}",
    ]
    lines += [f"FAILED {f['uri']}: {f['error']}" for f in s["failed"]]
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace) -> int:
    from facesieve.faces.engine import FaceEngine
    from facesieve.faces.verify import DEFAULT_THRESHOLD, verify

    cfg = _config(args)
    engine = FaceEngine(cfg.faces, cfg.run.device)
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    data = []
    for name in (args.image_a, args.image_b):
        try:
            data.append(Path(name).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {name}: {exc.strerror}") from exc
    r = verify(engine, data[0], data[1], threshold, (args.image_a, args.image_b))
    verdict = "same" if r.same_person else "different"
    _emit(
        args,
        {
            "image_a": args.image_a,
            "image_b": args.image_b,
            "cosine": r.cosine,
            "same_person": r.same_person,
            "threshold": r.threshold,
            "faces_a": r.faces_a,
            "faces_b": r.faces_b,
        },
        f"{verdict} person (cosine {r.cosine:.4f}, threshold {r.threshold})",
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from facesieve.cli.demo import build_demo_data
    from facesieve.runner.pipeline import run_pipeline

    root = Path(args.out)
    data_dir = build_demo_data(root / "data")
    config = _config(args)
    if args.config is None:  # ~110 images: small shards so that every worker gets some
        config = config.with_overrides("source", shard_size=32)
    progress = False if args.quiet else None
    result = run_pipeline(str(data_dir), str(root / "out"), config, show_progress=progress)
    text = f"demo data: {data_dir}\n" + _run_text(result.to_dict())
    _emit(args, result.to_dict(), text)
    return result.exit_code


def _run_text(info: dict[str, Any]) -> str:
    c, clean = info["cluster"], info["clean"]
    out = info["embed"]["output"].rstrip("/")
    lines = [_embed_text(info["embed"])]
    if c is None:
        lines.append("no face found in any image: nothing to index or cluster")
    else:
        lines += [
            f"index: {info['index']['factory']}, {info['index']['vectors']} vectors "
            f"({info['index']['added']} shards added)",
            f"clusters: {c['clusters']} identities, {c['noise']} unclustered faces ({c['mode']})"
            + (" (up to date)" if c["up_to_date"] else ""),
        ]
    lines.append(_clean_text(clean, out))
    return "\n".join(lines)


def _clean_text(summary: dict[str, Any], out: str) -> str:
    acts = ", ".join(f"{k} {v}" for k, v in summary["actions"].items())
    reasons = ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()) or "none"
    return (
        f"actions: {acts}\nreasons: {reasons}"
        + (" (up to date)" if summary.get("up_to_date") else "")
        + f"\nreport: {out}/report/index.html\nactions: {out}/report/actions.parquet"
    )


def cmd_cluster(args: argparse.Namespace) -> int:
    from facesieve.cluster.job import run_cluster

    r = run_cluster(args.out, _config(args))
    text = (
        f"{r.faces} faces -> {r.clusters} identities, {r.noise} unclustered ({r.mode} mode)"
        f" in {r.seconds:.1f}s" + (" (up to date)" if r.up_to_date else "")
    )
    _emit(args, asdict(r), text)
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from facesieve.clean.job import run_clean

    r = run_clean(args.out, _config(args))
    _emit(
        args,
        {"up_to_date": r.up_to_date, **r.summary},
        _clean_text({**r.summary, "up_to_date": r.up_to_date}, args.out.rstrip("/")),
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from facesieve.runner.pipeline import run_pipeline

    result = run_pipeline(
        args.input, args.out, _config(args), show_progress=False if args.quiet else None
    )
    _emit(args, result.to_dict(), _run_text(result.to_dict()))
    return result.exit_code


def cmd_eval(args: argparse.Namespace) -> int:
    from facesieve.evaluate.run import EvalOptions, run_eval, scores_text

    opts = EvalOptions(
        min_images=args.min_images,
        mislabel_rate=args.mislabel_rate,
        near_dup_rate=args.near_dup_rate,
        exact_dup_rate=args.exact_dup_rate,
        corrupt_rate=args.corrupt_rate,
        no_face_rate=args.no_face_rate,
        inject=not args.no_inject,
        seed=args.seed,
    )
    report = run_eval(
        args.labeled, args.out, _config(args), opts, show_progress=False if args.quiet else None
    )
    _emit(args, report, scores_text(report))
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from facesieve.index.build import build_index, merge_shards
    from facesieve.index.knn import build_knn
    from facesieve.storage import open_store

    cfg = _config(args)
    result = build_index(args.out, cfg)
    manifest = merge_shards(args.out, cfg) if args.merge else result.manifest
    knn = None
    if cfg.index.knn_k:
        knn = build_knn(open_store(args.out, cfg.run.s3_endpoint), cfg.index)
    info = {
        "factory": manifest.factory,
        "vectors": manifest.total,
        "shards": len(manifest.shards),
        "bytes_per_vector": manifest.params.get("bytes_per_vector"),
        "retrained": result.retrained,
        "added": len(result.added),
        "refilled": len(result.refilled),
        "removed": len(result.removed),
        "merged": manifest.merged,
        "timings": manifest.timings,
        "knn": asdict(knn) if knn else None,
        "manifest": f"{args.out.rstrip('/')}/index/manifest.json",
    }
    text = (
        f"index {manifest.factory}: {manifest.total} vectors in {len(manifest.shards)} shards "
        f"({'retrained' if result.retrained else 'extended'}: {len(result.added)} added, "
        f"{len(result.refilled)} refilled, {len(result.removed)} removed) in {result.seconds:.1f}s"
    )
    if knn:
        text += f"\nkNN graph: {knn.faces} faces x {knn.k} neighbours" + (
            " (up to date)" if knn.up_to_date else ""
        )
    _emit(args, info, text)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from facesieve.faces.engine import FaceEngine
    from facesieve.faces.verify import load_faces
    from facesieve.index.reader import IndexReader
    from facesieve.storage import open_store

    cfg = _config(args)
    try:
        data = Path(args.image).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {args.image}: {exc.strerror}") from exc
    reader = IndexReader(open_store(args.out, cfg.run.s3_endpoint), cfg.index)
    faces = sorted(
        load_faces(FaceEngine(cfg.faces, cfg.run.device), data, args.image),
        key=lambda f: -f.face_px,
    )
    found = reader.search(np.stack([f.embedding for f in faces]), args.k)
    report = []
    lines = []
    for i, (face, matches) in enumerate(zip(faces, found, strict=True)):
        box = [round(float(v), 1) for v in face.bbox]
        report.append(
            {
                "face": i,
                "bbox": box,
                "face_px": round(face.face_px, 1),
                "matches": [asdict(m) for m in matches],
            }
        )
        lines.append(f"face {i} at {box} ({face.face_px:.0f} px):")
        lines += [f"  {m.similarity:.4f}  {m.label or '-'}  {m.uri}  {m.face_id}" for m in matches]
    _emit(args, {"image": args.image, "faces": report}, "\n".join(lines))
    return 0


COMMANDS = {
    "embed": cmd_embed,
    "index": cmd_index,
    "search": cmd_search,
    "verify": cmd_verify,
    "demo": cmd_demo,
    "cluster": cmd_cluster,
    "clean": cmd_clean,
    "run": cmd_run,
    "eval": cmd_eval,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ModelError) as exc:
        log.error("%s", exc)
        return 2
    except FacesieveError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; finished shards are kept, rerun to continue")
        return 130


if __name__ == "__main__":
    sys.exit(main())
