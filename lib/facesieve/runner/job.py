"""The embed job: list shards, skip the finished ones, run the rest, write ``run.json``."""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from facesieve import __version__
from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.faces.model_pack import ModelPack
from facesieve.faces.stage import EmbedStage
from facesieve.runner.executors import ShardResult, run_local, run_ray
from facesieve.runner.markers import read_markers
from facesieve.runner.progress import Progress
from facesieve.sources import list_shards
from facesieve.storage import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    """What a run did; ``exit_code`` is 0 when every shard is done, 1 when some failed."""

    shards_total: int
    shards_skipped: int
    shards_processed: int
    failed: list[ShardResult]
    totals: dict[str, Any]
    seconds: float
    images_per_s: float
    run_info: dict[str, Any] = field(repr=False)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _check_separate(input_uri: str, out_uri: str) -> None:
    a, b = input_uri.rstrip("/") + "/", out_uri.rstrip("/") + "/"
    if b.startswith(a) or a.startswith(b):
        raise ConfigError(
            f"--out {out_uri} must not be inside the input {input_uri} (or contain it)"
        )


def add_stats(totals: dict[str, Any], stats: dict[str, Any]) -> None:
    """Sum per-shard stats: numbers add, nested dicts add key-wise."""
    for key, value in stats.items():
        if isinstance(value, dict):
            add_stats(totals.setdefault(key, {}), value)
        elif isinstance(value, (int, float)):
            totals[key] = round(totals.get(key, 0) + value, 3)


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


def run_embed(
    input_uri: str, out_uri: str, config: Config, show_progress: bool | None = None
) -> JobResult:
    """Embed every shard of ``input_uri`` that is not already done in ``out_uri``."""
    _check_separate(input_uri, out_uri)
    started = time.perf_counter()
    endpoint = config.run.s3_endpoint
    in_store, out_store = open_store(input_uri, endpoint), open_store(out_uri, endpoint)
    models = ModelPack.resolve(config.faces.detector, config.faces.recognizer)
    fingerprint = config.fingerprint(models.digests())

    shards = list_shards(in_store, config.source.layout, config.source.shard_size)
    if swept := out_store.sweep_partial():
        log.info("removed %d partial file(s) left by an interrupted run", swept)
    markers = read_markers(out_store, EmbedStage.name)
    done = {
        s.shard_id
        for s in shards
        if s.shard_id in markers and markers[s.shard_id].is_current(fingerprint, s.content_digest)
    }
    todo = [s for s in shards if s.shard_id not in done]
    listed_s = time.perf_counter() - started
    log.info("%d shards: %d done, %d to process", len(shards), len(done), len(todo))

    results: list[ShardResult] = []
    work_started = time.perf_counter()
    if todo:
        known_images = None if todo[0].layout == "webdataset" else sum(len(s.keys) for s in todo)
        progress = Progress(len(todo), known_images, enabled=show_progress)
        stage = EmbedStage(config, in_store)
        try:
            if config.run.runner == "local":
                results = run_local(stage, todo, out_store, fingerprint, config.run, progress)
            else:
                with ray_session(config):
                    results = run_ray(stage, todo, out_store, fingerprint, config.run, progress)
        finally:
            progress.close()
    work_s = time.perf_counter() - work_started

    # Totals cover every shard of the input: this run's results, else the finished shard's marker.
    fresh = {r.shard.shard_id: r.stats for r in results if r.stats is not None}
    totals: dict[str, Any] = {}
    for shard in shards:
        stats = fresh.get(shard.shard_id)
        if stats is None and shard.shard_id in done:
            stats = markers[shard.shard_id].stats
        if stats is not None:
            add_stats(totals, stats)
    processed = [r for r in results if r.stats is not None]
    new_images = sum(stats["images"] for stats in fresh.values())
    failed = [r for r in results if r.stats is None]
    seconds = time.perf_counter() - started
    info = {
        "command": "embed",
        "input": input_uri,
        "output": out_uri,
        "config": config.to_dict(),
        "fingerprint": fingerprint,
        "models": {
            "detector": models.detector,
            "recognizer": models.recognizer,
            **{f"{k}_sha256": v for k, v in models.digests().items()},
        },
        "versions": _versions(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "timings": {
            "list_s": round(listed_s, 3),
            "embed_s": round(work_s, 3),
            "total_s": round(seconds, 3),
        },
        "shards": {
            "total": len(shards),
            "skipped": len(done),
            "processed": len(processed),
            "failed": [
                {
                    "uri": r.shard.uri,
                    "shard_id": r.shard.shard_id,
                    "error": r.error,
                    "attempts": r.attempts,
                }
                for r in failed
            ],
        },
        "totals": totals,
        "throughput": {
            "images": new_images,
            "images_per_s": round(new_images / work_s, 2) if work_s > 0 and new_images else 0.0,
        },
    }
    out_store.write_bytes("run.json", json.dumps(info, indent=2).encode())
    return JobResult(
        shards_total=len(shards),
        shards_skipped=len(done),
        shards_processed=len(processed),
        failed=failed,
        totals=totals,
        seconds=seconds,
        images_per_s=info["throughput"]["images_per_s"],
        run_info=info,
    )


@contextmanager
def ray_session(config: Config) -> Iterator[None]:
    """Inside a Ray session: join ``--ray-address`` or start a local runtime (stopped after)."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=config.run.ray_address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()
