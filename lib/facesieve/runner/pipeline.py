"""Commands as sequences of steps, all run by the one executor (docs/ARCHITECTURE.md).

``facesieve run`` is embed -> index (train, fill, kNN graph, graph refresh) -> cluster -> clean;
``embed``, ``index``, ``cluster`` and ``clean`` run their part alone. Before anything is written
the run takes the output root's lease (one run at a time). The embed stage first lists the input
and updates the ledger. A stage whose units failed after their retries stops the run before the
global steps (a report over part of the input would not be what a fresh run writes); the run
then exits 1 and ``run.json`` lists the failed units with their errors.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from facesieve import __version__
from facesieve.cluster.job import ClusterStep, cluster_summary
from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.faces.model_pack import ModelPack
from facesieve.faces.stage import EmbedStep
from facesieve.index.knn import KnnRefreshStep, KnnStep
from facesieve.index.manifest import Manifest, read_manifest
from facesieve.index.steps import FillStep, TrainStep, merge_shards, write_index_manifest
from facesieve.redact import redact_uri
from facesieve.report.step import CleanStep, read_summary
from facesieve.runner.backends import shutdown_ray
from facesieve.runner.executor import StepResult, run_step
from facesieve.runner.lock import Lease
from facesieve.sources import LedgerChanges, list_input, read_ledger, update_ledger, write_ledger
from facesieve.storage import open_store, roots_overlap
from facesieve.storage.base import Store
from facesieve.work import Marker, Step, read_markers
from facesieve.work.retry import Backoff, with_retries

log = logging.getLogger(__name__)

STAGES = ("embed", "index", "cluster", "clean")
RUN_KEY = "run.json"
# what the global stages write; removed when no face is left to index
GLOBAL_STEPS = ("index-train", "index-fill", "knn", "knn-refresh", "cluster")


@dataclass
class RunResult:
    command: str
    steps: dict[str, StepResult]
    info: dict[str, Any]  # what run.json holds
    ledger: LedgerChanges | None = None
    stopped: str | None = None  # why later stages did not run
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def to_dict(self) -> dict[str, Any]:
        return self.info


@dataclass
class _Run:
    out: Store
    config: Config
    show_progress: bool | None
    guard: Callable[[], None]
    local_roots: tuple[str, ...] = ()  # refused on a multi-node cluster unless shared
    steps: dict[str, StepResult] = field(default_factory=dict)

    def step(self, step: Step) -> StepResult:
        result = run_step(
            step, self.out, self.config.run, self.show_progress, self.guard, self.local_roots
        )
        self.steps[step.name] = result
        return result

    def retried(self, fn: Callable[[], Any], what: str) -> Any:
        return with_retries(
            fn, what, Backoff(self.config.run.retry_backoff_s), self.config.run.retries
        )


def run_command(
    command: str,
    out_uri: str,
    config: Config,
    input_uri: str | None = None,
    stages: tuple[str, ...] = STAGES,
    show_progress: bool | None = None,
    accept_removals: bool = False,
) -> RunResult:
    """Run ``stages`` (in order) on ``out_uri``; ``input_uri`` is needed when embed is one."""
    started = time.time()
    if input_uri is not None:
        _check_separate(input_uri, out_uri)
    out = open_store(out_uri, config.run.s3_endpoint)
    # every URI and the config are recorded without user:password@ (run.json, --json output)
    info: dict[str, Any] = {
        "command": command,
        "input": redact_uri(input_uri),
        "output": redact_uri(out.root_uri),
    }
    with Lease(out, config.run.lease_s, command) as lease, _ray_scope():
        roots = [u for u in (input_uri, out.root_uri) if u is not None]
        local = tuple(redact_uri(u) for u in roots if not u.startswith("s3://"))
        run = _Run(out, config, show_progress, lease.check, local)
        if swept := out.sweep_partial():
            log.info("removed %d partial file(s) left by an interrupted run", swept)
        result = RunResult(command, run.steps, info)
        for stage in stages:
            failed = [f for r in run.steps.values() for f in r.failed]
            if failed:
                result.stopped = f"{len(failed)} unit(s) failed; {stage} and later stages not run"
                log.error("%s", result.stopped)
                break
            if stage == "embed":
                if input_uri is None:
                    raise ConfigError("the embed stage needs an input")
                result.ledger = _embed(run, input_uri, accept_removals, info)
            elif stage == "index":
                _index(run)
            elif stage == "cluster":
                _cluster(run)
            elif stage == "clean":
                _clean(run, info)
        result.failures = [
            {"step": r.step, **f.__dict__} for r in run.steps.values() for f in r.failed
        ]
        result.seconds = time.time() - started
        info.update(_summary(run, result, started, lease.run_id))
        run.retried(
            lambda: out.write_bytes(RUN_KEY, json.dumps(info, indent=2).encode()),
            "writing run.json",
        )
    return result


def run_pipeline(
    input_uri: str, out_uri: str, config: Config, show_progress: bool | None = None, **kw: Any
) -> RunResult:
    """``facesieve run``: every stage, each redoing only what is new or changed."""
    return run_command("run", out_uri, config, input_uri, STAGES, show_progress, **kw)


def run_embed(
    input_uri: str, out_uri: str, config: Config, show_progress: bool | None = None, **kw: Any
) -> RunResult:
    """``facesieve embed``: the ledger and the embed stage only."""
    return run_command("embed", out_uri, config, input_uri, ("embed",), show_progress, **kw)


@contextmanager
def _ray_scope() -> Iterator[None]:
    """Ray is started only when a step has work (a rerun with nothing new never starts it) and
    stopped at the end if this run started it."""
    try:
        yield
    finally:
        shutdown_ray()


def _check_separate(input_uri: str, out_uri: str) -> None:
    if roots_overlap(input_uri, out_uri):
        raise ConfigError(
            f"--out {out_uri} must not be inside the input {input_uri} (or contain it)"
        )


def _embed(run: _Run, input_uri: str, accept_removals: bool, info: dict[str, Any]) -> LedgerChanges:
    cfg = run.config
    started = time.perf_counter()
    follow = cfg.source.follow_external_links
    in_store = open_store(input_uri, cfg.run.s3_endpoint, follow_external_links=follow)
    models = ModelPack.resolve(cfg.faces.detector, cfg.faces.recognizer)  # fails early if missing
    fingerprint = cfg.fingerprint(models.digests())
    old = run.retried(lambda: read_ledger(run.out), "reading the ledger")
    listing = list_input(in_store, cfg.source.layout, old.layout if old else None)
    share = 1.0 if accept_removals else cfg.source.max_removed_share
    ledger, changes = update_ledger(old, listing, in_store, cfg.source.shard_size, share)
    run.retried(lambda: write_ledger(run.out, ledger), "writing the ledger")
    info["list_s"] = round(time.perf_counter() - started, 3)
    info["fingerprint"] = fingerprint
    info["models"] = {
        "detector": models.detector,
        "recognizer": models.recognizer,
        **{f"{k}_sha256": v for k, v in models.digests().items()},
    }
    run.step(EmbedStep(cfg, in_store, run.out, ledger, fingerprint))
    return changes


def _index(run: _Run) -> None:
    """Train (when needed), fill, write the manifest, then the kNN graph and its refresh."""
    out, cfg = run.out, run.config
    train = run.step(TrainStep(out, cfg))
    if not train.units:
        _clear_global(out)
        return
    if not train.ok:
        return
    fill = run.step(FillStep(out, train.markers["train"]))
    if not fill.ok:
        return
    manifest = run.retried(
        lambda: write_index_manifest(out, train.markers["train"], fill.markers), "the manifest"
    )
    if cfg.index.merge:
        run.retried(lambda: merge_shards(out, manifest), "merging the index")
    if not cfg.index.knn_k:
        return
    if not run.step(KnnStep(out, cfg.index, manifest)).ok:
        return
    run.step(KnnRefreshStep(out, cfg.index, manifest))


def _graph(run: _Run) -> tuple[Manifest | None, Marker | None]:
    manifest = run.retried(lambda: read_manifest(run.out), "reading the manifest")
    refresh = run.retried(lambda: read_markers(run.out, KnnRefreshStep.name), "reading markers")
    return manifest, refresh.get("refresh")


def _cluster(run: _Run) -> None:
    manifest, refresh = _graph(run)
    if manifest is None or not manifest.total:
        if not run.steps:  # `facesieve cluster` on its own
            raise ConfigError(f"no index under {run.out.root_uri}: run `facesieve index` first")
        return
    if refresh is None:
        raise ConfigError(f"no kNN graph under {run.out.root_uri}: run `facesieve index` first")
    step = ClusterStep(run.out, run.config, refresh.digest, sorted(manifest.shards), manifest.total)
    run.step(step)


def _clean(run: _Run, info: dict[str, Any]) -> None:
    manifest, refresh = _graph(run)
    cluster = run.retried(lambda: read_markers(run.out, ClusterStep.name), "reading markers")
    cluster = cluster.get("clusters")
    if manifest is not None and manifest.total:
        if cluster is None or refresh is None:
            raise ConfigError(
                f"no clusters under {run.out.root_uri}: run `facesieve cluster` first"
            )
        step = CleanStep(
            run.out, run.config, cluster.digest, sorted(manifest.shards), manifest.total
        )
    else:
        step = CleanStep(run.out, run.config, "no-faces", [], 0)
    if run.step(step).ok:
        info["report"] = run.retried(lambda: read_summary(run.out), "reading the summary")


def _clear_global(out: Store) -> None:
    """No face is left to index: remove what the global steps wrote for earlier inputs."""
    for step in GLOBAL_STEPS:
        for marker in read_markers(out, step).values():
            for key in marker.outputs:
                out.delete(key)
            out.delete(f"_done/{step}/{marker.unit_id}.json")
    for prefix in ("index/", "clusters/"):
        for item in out.list(prefix):
            out.delete(item.key)


def _versions() -> dict[str, str]:
    import numpy
    import onnxruntime
    import pyarrow

    versions = {
        "facesieve": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "onnxruntime": onnxruntime.__version__,
        "pyarrow": pyarrow.__version__,
    }
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:
        pass
    return versions


def _summary(run: _Run, result: RunResult, started: float, run_id: str) -> dict[str, Any]:
    """run.json: config, versions, timings, every step's counts, failures; and for the embed
    stage the keys scripts already read (``shards``, ``totals``, ``throughput``)."""
    info: dict[str, Any] = {
        "run_id": run_id,
        "config": run.config.public_dict(),
        "versions": _versions(),
        "started_at": _iso(started),
        "finished_at": _iso(time.time()),
        "seconds": round(result.seconds, 3),
        "exit_code": result.exit_code,
        "stopped": result.stopped,
        "failed": result.failures,
        "steps": {name: r.to_dict() for name, r in run.steps.items()},
    }
    if result.ledger is not None:
        info["ledger"] = result.ledger.counts()
    embed = run.steps.get(EmbedStep.name)
    if embed is not None:
        fresh = [m for m in embed.markers.values() if m.finished_at >= started]
        images = int(sum(m.stats.get("embedded", 0) for m in fresh))
        info["shards"] = {
            "total": embed.units,
            "skipped": embed.skipped,
            "processed": embed.processed,
            "removed": embed.removed,
            "failed": [
                {"uri": f.label, "shard_id": f.unit_id, "error": f.error, "attempts": f.attempts}
                for f in embed.failed
            ],
        }
        info["totals"] = embed.totals
        info["throughput"] = {
            "images": images,
            "images_per_s": round(images / embed.seconds, 2) if images and embed.seconds else 0.0,
        }
    if cluster := cluster_summary(run.out) if ClusterStep.name in run.steps else None:
        info["cluster"] = cluster
    return info


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
