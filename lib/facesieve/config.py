"""Configuration: YAML and CLI flags become frozen dataclasses that stages read.

Only settings that change what is written take part in the fingerprint (models, thresholds,
decoding limits). Execution settings (device, workers, Ray address) do not: running the same data
on a GPU cluster instead of a laptop must not redo finished shards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from facesieve.config_types import check_keys, checked, parse_assignment
from facesieve.errors import ConfigError
from facesieve.redact import redact_uri

FINGERPRINT_VERSION = 3  # bump when the meaning of an output column changes (3: photo_desc)
MAX_SHARD_SIZE = 1_000_000  # files per shard: index ids keep 22 bits for a file's slot


@dataclass(frozen=True)
class SourceConfig:
    """How input is listed and cut into shards, and what an acceptable image is."""

    layout: str = "auto"  # auto | webdataset | folders | flat
    shard_size: int = 1000  # images per new shard for folder and flat layouts
    max_image_bytes: int = 64 * 1024 * 1024  # larger files become status=too_large unread
    max_pixels: int = 40_000_000  # larger images (from the header): status too_large, not decoded
    # JPEGs of 2x faces.det_size or more decode at 1/2, 1/4 or 1/8 (libjpeg DCT scaling) for
    # detection, keeping the longer side >= det_size; faces under 224 px there are cropped from
    # a finer decode; sizes and coordinates stay in original pixels
    draft_decode: bool = True
    follow_external_links: bool = False  # read symbolic links that lead out of the input root
    # A run that finds more than this share of the files it knew gone stops before deleting
    # their outputs (an unmounted volume lists as empty); --accept-removals lets it go on.
    max_removed_share: float = 0.5

    def validate(self) -> None:
        if self.layout not in ("auto", "webdataset", "folders", "flat"):
            raise ConfigError(
                f"layout must be auto, webdataset, folders or flat, not {self.layout!r}"
            )
        if not 1 <= self.shard_size <= MAX_SHARD_SIZE:
            raise ConfigError(f"shard_size must lie in 1..{MAX_SHARD_SIZE}")
        if self.max_pixels < 1 or self.max_image_bytes < 1:
            raise ConfigError("max_pixels and max_image_bytes must be positive")
        if not 0.0 <= self.max_removed_share <= 1.0:
            raise ConfigError("max_removed_share must lie in [0, 1]")


@dataclass(frozen=True)
class FaceConfig:
    """Detection, alignment and embedding settings."""

    detector: str | None = None  # path to an SCRFD *_bnkps ONNX; null = bundled SCRFD-500M
    recognizer: str | None = None  # path to an ArcFace 112x112 ONNX; null = bundled MobileFaceNet
    det_size: int = 640  # largest detector input side (multiple of 32); never upscales
    det_min_size: int = 128  # smallest detector input side (multiple of 32)
    det_threshold: float = 0.5  # detector score a face needs, in (0, 1)
    nms_threshold: float = 0.4  # overlap (IoU) above which the weaker of two boxes is dropped
    min_face_px: float = 12.0  # faces whose larger box side is smaller are dropped
    flip: bool = False  # average each embedding with its mirror image's (slower, ~+0.1% LFW)
    aligned: str = "auto"  # auto | yes | no: treat 112x112 images as aligned crops
    det_batch: int = 0  # images per detector call; 0 = 16 on CPU, 64 on GPU
    embed_batch: int = 0  # faces per recognizer call; 0 = 64 on CPU, 256 on GPU

    def validate(self) -> None:
        if self.aligned not in ("auto", "yes", "no"):
            raise ConfigError(f"aligned must be auto, yes or no, not {self.aligned!r}")
        if not 32 <= self.det_min_size <= self.det_size:
            raise ConfigError("need 32 <= det_min_size <= det_size")
        if self.det_size % 32 or self.det_min_size % 32:
            raise ConfigError("det_size and det_min_size must be multiples of 32")
        if not (0 < self.det_threshold < 1 and 0 < self.nms_threshold < 1):
            raise ConfigError("det_threshold and nms_threshold must lie in (0, 1)")
        if self.det_batch < 0 or self.embed_batch < 0:
            raise ConfigError("det_batch and embed_batch must be >= 0 (0 = chosen for the device)")

    def batches(self, device: str) -> tuple[int, int]:
        """(det_batch, embed_batch) for ``device``: GPUs want larger batches than CPUs."""
        det_default, embed_default = (64, 256) if device == "cuda" else (16, 64)
        return self.det_batch or det_default, self.embed_batch or embed_default


@dataclass(frozen=True)
class RunConfig:
    """Where and how the work runs; not part of the fingerprint."""

    runner: str = "ray"  # ray | local (in-process, no Ray)
    ray_address: str | None = None  # Ray cluster to join (host:6379, auto); null = start one
    device: str = "auto"  # auto | cpu | cuda
    workers: int = 0  # Ray workers per step; 0 = as many as the CPUs (or GPU slots) hold
    threads_per_worker: int = 0  # 0 = CPU workers share the cores (cpus // workers), GPU ones too
    gpu_workers_per_device: int = 4  # actors per GPU: the CPU side (decode, align) is the limit
    retries: int = 4  # extra attempts for a unit that failed for a reason that may pass
    retry_backoff_s: float = 5.0  # wait before the first retry; doubles each time, 60 s at most
    unit_timeout_s: float = 3600.0  # a unit running longer is stopped and retried
    start_timeout_s: float = 600.0  # Ray workers that do not start by then: an error, not a hang
    lease_s: float = 120.0  # the output root's lock expires this long after its last renewal
    progress_interval_s: float = 30.0  # progress log lines when stderr is not a terminal
    s3_endpoint: str | None = None  # S3-compatible endpoint; AWS_ENDPOINT_URL works too
    # local input and output paths are mounted at the same place on every Ray node (NFS...);
    # false: a local path on a cluster of several nodes is refused (exit 2)
    shared_paths: bool = False

    def validate(self) -> None:
        if self.runner not in ("ray", "local"):
            raise ConfigError(f"runner must be ray or local, not {self.runner!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, not {self.device!r}")
        if self.workers < 0 or self.retries < 0 or self.gpu_workers_per_device < 1:
            raise ConfigError("workers and retries must be >= 0, gpu_workers_per_device >= 1")
        timings = ("retry_backoff_s", "unit_timeout_s", "start_timeout_s", "lease_s")
        if any(getattr(self, k) <= 0 for k in timings) or self.progress_interval_s <= 0:
            raise ConfigError(f"run: {', '.join(timings)} and progress_interval_s must be > 0")


@dataclass(frozen=True)
class IndexConfig:
    """The FAISS index over OUT/faces and the kNN graph (docs/INDEX.md explains the rule)."""

    memory: str = "8G"  # budget for the index in RAM; sets the PQ code size
    factory: str | None = None  # a FAISS index_factory string overrides the rule
    flat_below: int = 20_000  # fewer vectors: exact IndexFlatIP, no training
    nprobe: int = 0  # IVF lists visited per query; 0 = max(32, nlist / 64)
    retrain_factor: float = 4.0  # retrain when vectors grew past this x the count trained on
    candidates: int = 10  # re-rank max(100, candidates x k) approximate candidates exactly
    knn_k: int = 32  # neighbours per face in index/knn/; 0 = no graph
    knn_candidates: int = 100  # approximate candidates re-ranked exactly per face of the graph
    merge: bool = False  # also write every index shard into one index file (merged.faiss)

    def validate(self) -> None:
        parse_memory(self.memory)
        if self.flat_below < 0 or self.nprobe < 0 or self.knn_k < 0:
            raise ConfigError("flat_below, nprobe and knn_k must be >= 0")
        if self.retrain_factor <= 1.0 or self.candidates < 1 or self.knn_candidates < 1:
            raise ConfigError("retrain_factor must be > 1, candidates and knn_candidates >= 1")


@dataclass(frozen=True)
class ClusterConfig:
    """HDBSCAN over the kNN graph (docs/CLEANING.md explains each setting)."""

    min_cluster_size: int = 3  # smallest group of faces that counts as an identity
    min_samples: int = 2  # neighbours behind a face's core distance (<= index.knn_k)
    selection: str = "eom"  # eom (excess of mass) | leaf (finer clusters)
    mode: str = "auto"  # auto | labeled | unlabeled: auto = labeled when most images have labels

    def validate(self) -> None:
        if self.min_cluster_size < 2 or self.min_samples < 1:
            raise ConfigError("cluster.min_cluster_size must be >= 2 and min_samples >= 1")
        if self.selection not in ("eom", "leaf"):
            raise ConfigError(f"cluster.selection must be eom or leaf, not {self.selection!r}")
        if self.mode not in ("auto", "labeled", "unlabeled"):
            raise ConfigError(f"cluster.mode must be auto, labeled or unlabeled, not {self.mode!r}")


@dataclass(frozen=True)
class CleanConfig:
    """Thresholds of the cleaning rules; every one is documented in docs/CLEANING.md."""

    min_face_px: float = 32.0  # subject face smaller than this (larger box side): low_quality
    min_det_score: float = 0.6  # subject detection score below this: low_quality
    min_sharpness: float = 10.0  # Laplacian variance of the aligned crop below this: low_quality
    near_dup_min_cosine: float = 0.75  # face embedding cosine that makes two images candidates
    near_dup_min_pixel: float = 0.96  # same-photograph pixel score (clean.pixels) confirming a dup
    photo_dup_min_similarity: float = 0.95  # photo descriptors this close make candidates too
    photo_dup_min_similarity_no_face: float = 0.8  # the same, when either image has no usable face
    mislabel_min_cosine: float = 0.4  # face vs the suggested label's identity, at least
    mislabel_max_own: float = 0.2  # face vs its own label's identity, at most
    mislabel_margin: float = 0.2  # suggested minus own similarity, at least
    outlier_max_own: float = 0.25  # face vs its own label's identity below this: outlier
    outlier_full_face_px: float = 80.0  # smaller faces need less own support (weaker evidence)
    outlier_small_face_discount: float = 0.2  # outlier_max_own is this much lower at min_face_px
    identity_min_share: float = 0.3  # share of a label's faces its dominant cluster must hold
    identity_fallback_cosine: float = 0.3  # no dominant cluster: faces this close to the mean
    split_min_cosine: float = 0.55  # two labels' identity centroids this close: one person
    split_min_faces: int = 2  # faces each label needs before a split is claimed
    split_edge_min_cosine: float = 0.3  # kNN edge between two labels' faces making them a pair
    multi_min_faces: int = 3  # faces a second identity inside a label needs
    multi_max_cosine: float = 0.4  # second identity's centroid below this vs the first
    report_rows: int = 60  # items per page of the review page (and per data chunk/sheet)

    def validate(self) -> None:
        unit = (
            "near_dup_min_cosine",
            "near_dup_min_pixel",
            "photo_dup_min_similarity",
            "photo_dup_min_similarity_no_face",
            "mislabel_min_cosine",
            "mislabel_max_own",
            "mislabel_margin",
            "outlier_max_own",
            "split_min_cosine",
            "multi_max_cosine",
            "min_det_score",
            "split_edge_min_cosine",
            "identity_fallback_cosine",
        )
        bad = [k for k in unit if not -1.0 <= getattr(self, k) <= 1.0]
        if bad:
            raise ConfigError(f"clean: {', '.join(bad)} must lie in [-1, 1]")
        if self.split_min_faces < 1 or self.multi_min_faces < 1 or self.report_rows < 1:
            raise ConfigError("clean: split_min_faces, multi_min_faces, report_rows must be >= 1")
        if self.min_face_px < 0 or self.outlier_full_face_px < 0:
            raise ConfigError("clean: min_face_px and outlier_full_face_px must be >= 0")
        if (
            not 0.0 <= self.identity_min_share <= 1.0
            or not 0.0 <= self.outlier_small_face_discount <= 2.0
        ):
            raise ConfigError(
                "clean: identity_min_share must lie in [0, 1], "
                "outlier_small_face_discount in [0, 2]"
            )


@dataclass(frozen=True)
class Config:
    source: SourceConfig = field(default_factory=SourceConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    run: RunConfig = field(default_factory=RunConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)

    def validate(self) -> Config:
        self.source.validate()
        self.faces.validate()
        self.run.validate()
        self.index.validate()
        self.cluster.validate()
        self.clean.validate()
        if self.index.knn_k and self.cluster.min_samples > self.index.knn_k:
            raise ConfigError("cluster.min_samples cannot exceed index.knn_k")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Every value as is, secrets included: for code, never for a file or a log."""
        return dataclasses.asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """``to_dict`` with ``user:password@`` removed from URLs: what run.json, ``--json`` and
        ``facesieve config`` show."""
        data = dataclasses.asdict(self)
        for section, key in SECRET_KEYS:
            data[section][key] = redact_uri(data[section][key])
        return data

    def with_overrides(self, section: str, **values: Any) -> Config:
        """A copy with some keys of one section replaced; ``None`` values are ignored."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return self
        current = getattr(self, section)
        values = checked(type(current), values, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **values)})

    def fingerprint(self, model_digests: dict[str, str]) -> str:
        """Hash of everything that changes the rows a shard produces."""
        relevant = {
            "version": FINGERPRINT_VERSION,
            "source": {
                k: v
                for k, v in dataclasses.asdict(self.source).items()
                if k in ("max_image_bytes", "max_pixels", "draft_decode")
            },
            "faces": {
                k: v
                for k, v in dataclasses.asdict(self.faces).items()
                if k not in ("detector", "recognizer", "det_batch", "embed_batch")
            },
            "models": model_digests,
        }
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def parse_memory(text: str) -> int:
    """``8G``, ``512M``, ``1.5T`` or a plain number of bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ConfigError(f"memory budget {text!r} is not like 8G, 512M or 1000000")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "faces": FaceConfig,
    "run": RunConfig,
    "index": IndexConfig,
    "cluster": ClusterConfig,
    "clean": CleanConfig,
}
SECRET_KEYS = (("run", "s3_endpoint"), ("run", "ray_address"))  # may carry user:password@


def load_config(path: str | Path | None, sets: Sequence[str] = ()) -> Config:
    """The effective config: defaults, then the YAML file at ``path`` (sections source, faces,
    run, index, cluster, clean; None: no file), then each ``--set SECTION.KEY=VALUE`` in order.
    Every value is type-checked against its field (``config_types``), then ranges are checked."""
    data = _read_yaml(path) if path is not None else {}
    where = f"config file {path}: " if path is not None else ""
    built: dict[str, dict[str, Any]] = {}
    for name, cls in SECTIONS.items():
        values = data.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{where}section {name!r} must be a mapping of keys")
        try:
            built[name] = checked(cls, values, name)
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None
    for text in sets:
        section, key, value = parse_assignment(text, SECTIONS)
        built[section][key] = value
    return Config(**{n: SECTIONS[n](**v) for n, v in built.items()}).validate()


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    check_keys(Config, data, f"config file {path}")
    return data
