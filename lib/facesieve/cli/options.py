"""Option groups the subcommands share (parser.py assembles them): one definition per flag,
so that a flag means the same on every command, with defaults read from the config classes."""

from __future__ import annotations

import argparse

from facesieve.config import Config

_DEFAULTS = Config()


def default(section: str, key: str) -> str:
    """A key's default as help text shows it, read from the dataclasses so it cannot drift."""
    value = getattr(getattr(_DEFAULTS, section), key)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


EPILOG = """\
INPUT and OUT are local paths or s3://bucket/prefix URIs. S3 credentials come from the standard
AWS chain (environment, ~/.aws, instance role); --s3-endpoint or AWS_ENDPOINT_URL selects an
S3-compatible store. One run at a time per OUT (a lease in OUT/_lock.json). Exit codes: 0
success; 1 some units failed after retries (the others are written, later stages not run);
2 usage or configuration error, or OUT is busy with another run.
"""


def add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("common options")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file with sections source, faces, run, index, cluster, clean "
        "(`facesieve config` prints one; every key: docs/OPERATIONS.md); --set and the other "
        "flags override it",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key, typed like the YAML value (e.g. --set "
        "clean.min_face_px=40, --set run.retries=2); repeatable, applied after --config",
    )
    g.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help=f"inference device (default {default('run', 'device')})",
    )
    g.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more logging (-vv for debug; credentials are always masked, and the AWS SDK's own "
        "debug lines need FACESIEVE_SDK_DEBUG=1 as well)",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bar")


S3_HELP = "S3-compatible endpoint URL (default: AWS_ENDPOINT_URL, else AWS S3)"
NPROBE_HELP = "IVF lists visited per query (default 0: max(32, nlist / 64))"
FACE_HELP = (
    "which face of a photo to use: subject (default: the complete, central, large, "
    "well-detected face; docs/OPERATIONS.md), largest, central, all, or N (the N-th face, "
    "0-based, best detection score first)"
)


def face_choice(text: str) -> str | int:
    """``--face`` value: a rule name, ``all``, or a face number (0-based, detection order)."""
    if text in ("subject", "largest", "central", "all"):
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(
        f"{text!r} is not one of subject, largest, central, all or a face number (0, 1, ...)"
    )


def add_face(p: argparse.ArgumentParser, all_means: str) -> None:
    help_text = f"{FACE_HELP}; all: {all_means}"
    p.add_argument("--face", type=face_choice, default="subject", metavar="RULE", help=help_text)


def add_models(p: argparse.ArgumentParser) -> None:
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
        "--det-size",
        type=int,
        metavar="PX",
        help="largest detector input side, a multiple of 32 "
        f"(default {default('faces', 'det_size')})",
    )
    g.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each embedding with the mirrored face's "
        f"(default {default('faces', 'flip')})",
    )


def add_job(p: argparse.ArgumentParser) -> None:
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
        help=f"images per shard for folders/flat (default {default('source', 'shard_size')})",
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
        "--workers",
        type=int,
        metavar="N",
        help="Ray worker processes per step (default 0: as many as the cluster's CPUs hold, or "
        "run.gpu_workers_per_device per GPU; never more than the step has units; the local "
        "runner always uses one)",
    )
    backoff = float(default("run", "retry_backoff_s"))
    g.add_argument(
        "--retries",
        type=int,
        metavar="N",
        help="extra attempts for a unit that failed for a passing reason, with backoff "
        f"({backoff:g}, {2 * backoff:g}, {4 * backoff:g} s... at most 60 s; "
        f"default {default('run', 'retries')})",
    )
    g.add_argument("--s3-endpoint", metavar="URL", help=S3_HELP)
    g.add_argument(
        "--accept-removals",
        action="store_true",
        help="go on when more than source.max_removed_share "
        f"({default('source', 'max_removed_share')}) of the files known from the last run are "
        "gone (without it the run stops before deleting their outputs)",
    )
    g.add_argument(
        "--follow-external-links",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read symbolic links that lead out of the input root (default: refuse them, each "
        "becomes an 'unsupported' row)",
    )


def add_index(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("index and kNN graph")
    g.add_argument(
        "--memory",
        metavar="SIZE",
        help=f"index memory budget, e.g. 8G or 512M (default {default('index', 'memory')})",
    )
    g.add_argument(
        "--factory", metavar="STR", help="FAISS index_factory string overriding the rule"
    )
    g.add_argument(
        "--nprobe",
        type=int,
        metavar="N",
        help=NPROBE_HELP,
    )
    g.add_argument(
        "--knn-k",
        type=int,
        metavar="K",
        help="neighbours per face in the kNN graph; 0: no graph "
        f"(default {default('index', 'knn_k')})",
    )


def add_cluster(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("clustering")
    g.add_argument(
        "--min-cluster-size",
        type=int,
        metavar="N",
        help="smallest group of faces that counts as an identity "
        f"(default {default('cluster', 'min_cluster_size')})",
    )
    g.add_argument(
        "--min-samples",
        type=int,
        metavar="N",
        help="neighbours behind a face's core distance, at most --knn-k "
        f"(default {default('cluster', 'min_samples')})",
    )
    g.add_argument(
        "--mode",
        choices=["auto", "labeled", "unlabeled"],
        help="labeled: compare clusters with labels; unlabeled: clusters are the "
        "identities (default auto: labeled when most images have a label)",
    )


def global_step(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str, out_help: str
) -> argparse.ArgumentParser:
    """A subcommand that works on an output root only (cluster, clean)."""
    p = sub.add_parser(name, help=summary, description=description)
    p.add_argument("out", metavar="OUT", help=out_help)
    add_runner(p)
    return p


def add_runner(p: argparse.ArgumentParser) -> None:
    """Where the units of an OUT-only command run."""
    p.add_argument("--runner", choices=["ray", "local"], help="ray (default) or local in-process")
    p.add_argument("--ray-address", metavar="ADDR", help="join a Ray cluster")
    p.add_argument("--s3-endpoint", metavar="URL", help=S3_HELP)


def add_pipeline(p: argparse.ArgumentParser) -> None:
    """Every option that shapes a whole run: `run` takes them, and `config` takes the same so
    that it prints what that `run` would use."""
    add_job(p)
    add_models(p)
    add_index(p)
    add_cluster(p)
    add_common(p)
