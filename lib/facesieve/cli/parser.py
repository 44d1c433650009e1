"""The ``facesieve`` argument parser: every subcommand, its flags and its help text (the
option groups several subcommands share are in options.py)."""

from __future__ import annotations

import argparse

from facesieve import __version__
from facesieve.cli.options import (
    EPILOG,
    NPROBE_HELP,
    S3_HELP,
    add_cluster,
    add_common,
    add_face,
    add_index,
    add_job,
    add_models,
    add_pipeline,
    add_runner,
    global_step,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facesieve",
        description="Clean large face-image datasets: embed every face, index and cluster the "
        "identities, and report what is wrong (duplicates, mislabeled images, outliers, broken "
        "files) with an action per image. Start with `facesieve run INPUT --out OUT`.",
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
    add_job(p)
    add_models(p)
    add_common(p)

    p = sub.add_parser(
        "verify",
        help="1:1: same person or not, with the cosine",
        description="Compare the subject face of IMAGE_A with the subject face of IMAGE_B "
        "(--face chooses another face; the same choice applies to both images). Prints the "
        "cosine similarity, 'same' when it reaches the threshold, and which faces were compared.",
    )
    p.add_argument("image_a", metavar="IMAGE_A")
    p.add_argument("image_b", metavar="IMAGE_B")
    p.add_argument(
        "--threshold",
        type=float,
        help="cosine at or above which faces match (default 0.225: the mean of the 10 LFW "
        "folds' thresholds, docs/BENCHMARKS.md)",
    )
    add_face(p, "every face of A against every face of B, the most similar pair decides")
    add_models(p)
    add_common(p)

    p = sub.add_parser(
        "index",
        help="IVF-PQ index over OUT/faces and the kNN graph",
        description="Build or extend the FAISS index over OUT/faces (parameters from the number of "
        "vectors and --memory; see docs/INDEX.md), then the kNN graph under OUT/index/knn/. "
        "Only new or changed faces shards are encoded and searched, and the graph rows of other "
        "faces are refreshed; the index is retrained when the data has grown past "
        "index.retrain_factor.",
    )
    p.add_argument("out", metavar="OUT", help="output root of `facesieve embed`")
    add_index(p)
    p.add_argument(
        "--merge",
        action="store_true",
        default=None,
        help="also write all shards as one index file, index/gen-*/merged.faiss (default off)",
    )
    add_runner(p)
    add_common(p)

    p = sub.add_parser(
        "search",
        help="1:N: nearest faces in the index",
        description="Detect and embed the faces of IMAGE, search the index of OUT and print, for "
        "the subject face (or the faces --face chooses), the K most similar indexed faces with "
        "uri, label, face_id and cosine similarity (re-ranked on the stored embeddings, float16).",
    )
    p.add_argument("out", metavar="OUT", help="output root with an index")
    p.add_argument("image", metavar="IMAGE", help="query photo")
    p.add_argument("-k", type=int, default=5, help="matches per query face (default 5)")
    p.add_argument("--nprobe", type=int, metavar="N", help=NPROBE_HELP)
    p.add_argument("--s3-endpoint", metavar="URL", help=S3_HELP)
    add_face(p, "every face, largest first")
    add_models(p)
    add_common(p)

    p = global_step(
        sub,
        "cluster",
        "identities: HDBSCAN on the index's kNN graph",
        "Cluster every indexed face into identities with HDBSCAN built on the kNN graph of "
        "`facesieve index` (no all-pairs matrix, so a million faces fit one machine). Writes "
        "OUT/clusters/faces.parquet and identities.parquet (docs/FORMATS.md).",
        "output root with an index and kNN graph",
    )
    add_cluster(p)
    add_common(p)

    p = global_step(
        sub,
        "clean",
        "actions, summary and HTML report",
        "Apply the cleaning rules (docs/CLEANING.md) to the embeddings, clusters and labels of "
        "OUT. Writes OUT/report/actions.parquet (+ .csv): one row per input image with action "
        "keep|drop|relabel|review and its reasons; summary.json; index.html. Every threshold "
        "is a clean.* key: change it with --set clean.KEY=VALUE or a --config file (the keys: "
        "`facesieve config`, docs/CLEANING.md). The embeddings are read into a temporary "
        "file under TMPDIR on the node that cleans (2 KB a face, deleted when done).",
        "output root with clusters",
    )
    add_common(p)

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
    add_pipeline(p)

    p = sub.add_parser(
        "apply",
        help="write the cleaned dataset from a run's actions (and review decisions)",
        description="Write the cleaned dataset of a finished run into DEST: OUT's input with the "
        "report's actions applied (report/actions.parquet), a person's decisions replacing them "
        "per image. folders input -> DEST/<label>/<file> (drop left out, relabel moved to the "
        "new label, keep hard-linked when input and DEST are local on one filesystem, else "
        "copied); webdataset -> tar shards of the same names (dropped samples left out, new "
        "labels in KEY.json / KEY.cls); flat -> the same relative paths, drops left out. "
        "`review` is kept unless a decision says otherwise. A file changed since the report is "
        "not applied (rerun `facesieve run`). Rerunning is safe: DEST ends as a fresh apply "
        "would write it; apply removes only files it wrote, and refuses a non-empty DEST it "
        "did not write. DEST/_facesieve.manifest.parquet says what happened to every image "
        "(docs/CLEANING.md).",
        epilog="Exit codes: 0 done; 1 some files failed (the rest are written); 2 usage or "
        "configuration error (no report in OUT, DEST inside the input or OUT, a bad decisions "
        "file, a non-empty DEST apply did not write).",
    )
    p.add_argument("out", metavar="OUT", help="output root of a finished `facesieve run`")
    p.add_argument(
        "--to",
        required=True,
        dest="dest",
        metavar="DEST",
        help="where the cleaned dataset goes (folder or s3://bucket/prefix; empty, or written "
        "by an earlier apply)",
    )
    p.add_argument(
        "--decisions",
        metavar="FILE",
        help="review decisions (JSON, the review page's export; docs/FORMATS.md): each replaces "
        "the report's action of one image",
    )
    p.add_argument(
        "--quarantine",
        metavar="DIR",
        help="copy dropped files here (same relative paths; dropped samples into tars of the "
        "same names), with the reasons in DIR/_facesieve.manifest.parquet",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be written and removed; write nothing",
    )
    p.add_argument(
        "--copy", action="store_true", help="always copy kept files, never hard-link them"
    )
    p.add_argument("--s3-endpoint", metavar="URL", help="S3-compatible endpoint URL")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress")

    p = sub.add_parser(
        "config",
        help="print the effective configuration as YAML",
        description="Print the configuration a command with these options would use, as YAML "
        "that --config reads back: the defaults, then --config FILE, then each --set, then the "
        "flags. URL credentials (user:password@) are shown as REDACTED. A wrong key or a value of "
        "the wrong type is an error naming the key (exit 2).",
    )
    p.add_argument(
        "--defaults", action="store_true", help="start from the built-in defaults, ignore --config"
    )
    add_pipeline(p)

    p = sub.add_parser(
        "eval",
        help="quality benchmark: inject known problems, score the pipeline",
        description="Copy labeled folder-per-identity datasets (and, with --photos, unlabeled "
        "photo collections) to OUT while injecting known problems: images moved to a wrong "
        "label, label swaps, photos filed twice under two labels, edited copies (re-encoded, "
        "resized, cropped, padded, mirrored, rotated, recoloured, grey, blurred, sharpened, "
        "captioned, watermarked), exact copies, corrupt files, images without a face. Runs the "
        "whole pipeline on each copy and prints precision and recall per reason, per data kind "
        "(each folder) and per edit, and the clustering's BCubed F. By default identities are "
        "split by a hash into a calibration and a test part: thresholds are chosen on the "
        "calibration part and both the configured and the chosen ones are scored on the test "
        "part (docs/CLEANING.md). With several folders, labels are prefixed with each folder's "
        "name.",
    )
    p.add_argument("labeled", nargs="*", metavar="LABELED_DIR", help="folder-per-identity data")
    p.add_argument("--out", required=True, metavar="OUT", help="work folder (data copies, outputs)")
    p.add_argument(
        "--photos",
        action="append",
        default=[],
        metavar="DIR",
        help="an unlabeled photo collection (any layout below DIR), run as flat photos: "
        "duplicates at the photo level; repeatable",
    )
    p.add_argument(
        "--split",
        choices=["calibrate", "test", "none"],
        default="calibrate",
        help="calibrate (default): choose thresholds on the calibration identities and score "
        "the test identities; test: only the test identities, configured thresholds; none: "
        "every identity",
    )
    p.add_argument(
        "--min-images",
        type=int,
        default=1,
        metavar="N",
        help="use identities with at least N images (default 1: all)",
    )
    rates = (
        ("--mislabel-rate", 0.10, "share of images moved to a wrong label"),
        ("--swap-rate", 0.01, "share of images in pairs swapped between two labels"),
        ("--refile-rate", 0.01, "copies of a photo filed under another label, as a share"),
        ("--near-dup-rate", 0.03, "share of images given an edited copy"),
        ("--exact-dup-rate", 0.02, "share of images given a byte-identical copy"),
        ("--corrupt-rate", 0.01, "corrupt files added, as a share of images"),
        ("--no-face-rate", 0.01, "images without a face added, as a share"),
        ("--photo-copy-rate", 0.5, "photo collections: share of photos given an edited copy"),
    )
    for flag, default, text in rates:
        p.add_argument(flag, type=float, default=default, metavar="R",
                       help=f"{text} (default {default})")  # fmt: skip
    p.add_argument(
        "--mislabel-scope",
        choices=["within", "across"],
        default="within",
        help="move images to labels of the same folder (within, default: the hard case) or of "
        "another LABELED_DIR (across)",
    )
    p.add_argument(
        "--no-inject",
        action="store_true",
        help="copy nothing, inject nothing: report what is flagged in one dataset as is",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--runner", choices=["ray", "local"], help="ray (default) or local")
    add_common(p)

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
    add_common(p)
    return parser
