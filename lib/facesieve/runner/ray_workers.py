"""Ray actor classes (imported only when Ray runs, so the local path never imports Ray)."""

from __future__ import annotations

from typing import Any

import ray

from facesieve.faces.stage import EmbedStage
from facesieve.runner.shard_task import run_shard
from facesieve.sources import Shard
from facesieve.storage.base import Store


@ray.remote(num_cpus=0)
class ProgressCounter:
    """Images processed so far, summed over workers, polled by the driver's progress bar."""

    def __init__(self) -> None:
        self._n = 0

    def add(self, n: int) -> None:
        self._n += n

    def total(self) -> int:
        return self._n


@ray.remote
class ShardWorker:
    """Loads the models once, then processes the shards the driver sends, one at a time."""

    def __init__(
        self,
        stage: EmbedStage,
        device: str,
        threads: int,
        out: Store,
        fingerprint: str,
        counter: Any,
    ) -> None:
        import logging

        logging.basicConfig(level=logging.WARNING)
        self.stage = stage
        self.stage.setup(device, threads)
        self.out = out
        self.fingerprint = fingerprint
        self.counter = counter

    def run(self, shard: Shard) -> dict[str, Any]:
        return run_shard(self.stage, shard, self.out, self.fingerprint, self.counter.add.remote)
