"""Executors run a stage over shards: in-process (``local``) or on Ray actors (``ray``).

Both share ``run_shard`` and the same retry rule: a failing shard is tried ``1 + retries`` times,
then reported in the results while the other shards carry on.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Any

from facesieve.config import RunConfig
from facesieve.faces.backends import resolve_device
from facesieve.faces.stage import EmbedStage
from facesieve.runner.progress import Progress
from facesieve.runner.shard_task import run_shard
from facesieve.sources import Shard
from facesieve.storage.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardResult:
    shard: Shard
    stats: dict[str, Any] | None  # None when the shard failed
    error: str | None
    attempts: int


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def run_local(
    stage: EmbedStage,
    shards: list[Shard],
    out: Store,
    fingerprint: str,
    run: RunConfig,
    progress: Progress,
) -> list[ShardResult]:
    """In-process execution: simplest to debug, and what a single GPU box needs."""
    stage.setup(resolve_device(run.device), run.threads_per_worker)
    results = []
    for shard in shards:
        error = None
        for attempt in range(1, run.retries + 2):
            try:
                stats = run_shard(stage, shard, out, fingerprint, progress.add_images)
            except Exception as exc:
                error = _describe(exc)
                log.warning("shard %s attempt %d failed: %s", shard.uri, attempt, error)
                continue
            results.append(ShardResult(shard, stats, None, attempt))
            break
        else:
            results.append(ShardResult(shard, None, error, run.retries + 1))
        progress.shard_done()
    return results


def run_ray(
    stage: EmbedStage,
    shards: list[Shard],
    out: Store,
    fingerprint: str,
    run: RunConfig,
    progress: Progress,
) -> list[ShardResult]:
    """Ray actors, each loading the models once and taking shards from the driver.

    Actors get one CPU each (no Ray Data, whose default read tasks deadlock a 2-CPU node), or a
    fraction of a GPU when the cluster has GPUs, so that several actors share a GPU and its idle
    time while one decodes is used by another (``gpu_workers_per_device``; docs/OPERATIONS.md).
    Each actor has up to two shards queued so it never waits on the driver.
    """
    import ray
    from ray.exceptions import RayActorError

    from facesieve.runner.ray_workers import ProgressCounter, ShardWorker

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = run.device == "cuda" or (run.device == "auto" and gpus > 0)
    if use_gpu:
        n_workers = run.workers or max(1, gpus * run.gpu_workers_per_device)
        options: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1.0 / run.gpu_workers_per_device}
        cpus_per_worker = int(resources.get("CPU", 1)) // max(n_workers, 1)
        device, threads = "cuda", run.threads_per_worker or max(1, cpus_per_worker)
    else:
        n_workers = run.workers or max(1, int(resources.get("CPU", 1)))
        options = {"num_cpus": 1}
        device, threads = "cpu", run.threads_per_worker or 1
    n_workers = max(1, min(n_workers, len(shards)))
    log.info("ray: %d %s worker(s), resources %s", n_workers, device, options)

    counter = ProgressCounter.remote()

    def new_worker() -> Any:
        return ShardWorker.options(**options).remote(
            stage, device, threads, out, fingerprint, counter
        )

    workers = [new_worker() for _ in range(n_workers)]
    queue_ = deque(shards)
    attempts: dict[str, int] = {}
    inflight: dict[Any, tuple[Shard, int]] = {}  # ref -> (shard, worker index)
    load = [0] * n_workers
    results: list[ShardResult] = []

    def submit() -> None:
        for w in range(n_workers):
            while load[w] < 2 and queue_:
                shard = queue_.popleft()
                attempts[shard.shard_id] = attempts.get(shard.shard_id, 0) + 1
                inflight[workers[w].run.remote(shard)] = (shard, w)
                load[w] += 1

    submit()
    while inflight:
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
        progress.images_done(ray.get(counter.total.remote()))
        for ref in ready:
            shard, w = inflight.pop(ref)
            load[w] -= 1
            try:
                stats = ray.get(ref)
            except RayActorError as exc:
                error = _describe(exc)
                log.warning("worker died on shard %s: %s; starting a new one", shard.uri, error)
                workers[w] = new_worker()
            except Exception as exc:  # RayTaskError wraps whatever the shard raised
                error = _describe(getattr(exc, "cause", None) or exc)
            else:
                results.append(ShardResult(shard, stats, None, attempts[shard.shard_id]))
                progress.shard_done()
                continue
            if attempts[shard.shard_id] <= run.retries:
                log.warning(
                    "shard %s attempt %d failed: %s", shard.uri, attempts[shard.shard_id], error
                )
                queue_.append(shard)
            else:
                log.error(
                    "shard %s failed after %d attempts: %s",
                    shard.uri,
                    attempts[shard.shard_id],
                    error,
                )
                results.append(ShardResult(shard, None, error, attempts[shard.shard_id]))
                progress.shard_done()
        submit()
    progress.images_done(ray.get(counter.total.remote()))
    for worker in workers:
        ray.kill(worker)
    ray.kill(counter)
    return results
