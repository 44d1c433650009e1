"""Ray actor classes (imported only when Ray runs, so the in-process path never imports Ray)."""

from __future__ import annotations

from typing import Any

import ray

from facesieve.work import Step, Unit, UnitOutput


@ray.remote(num_cpus=0)
class ProgressCounter:
    """Items processed so far, summed over workers, polled by the driver's progress."""

    def __init__(self) -> None:
        self._n = 0

    def add(self, n: int) -> None:
        self._n += n

    def total(self) -> int:
        return self._n


@ray.remote
class UnitWorker:
    """Runs ``step.setup`` once, then the units the driver sends, one at a time."""

    def __init__(self, step: Step, device: str, threads: int, counter: Any) -> None:
        import logging

        logging.basicConfig(level=logging.WARNING)
        self.step = step
        self.step.setup(device, threads)
        self.counter = counter

    def ready(self) -> bool:
        return True

    def run(self, unit: Unit) -> UnitOutput:
        return self.step.process(unit, self.counter.add.remote)
