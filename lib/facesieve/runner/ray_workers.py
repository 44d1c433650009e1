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
    """A worker process that serves one step at a time: ``load`` runs the step's ``setup``
    once, ``run`` does a unit, ``unload`` lets the step go so the process can serve the next."""

    def __init__(self) -> None:
        import logging

        from facesieve.redact import install_redaction

        # Ray sends what a worker logs to the driver's stderr as text, past the driver's log
        # filter: the worker redacts its own records and keeps the AWS SDK quiet.
        logging.basicConfig(level=logging.WARNING)
        install_redaction()
        self.step: Step | None = None
        self.counter: Any = None

    def load(self, step: Step, device: str, threads: int, counter: Any) -> dict[str, Any]:
        """Set the step up; returns where this worker runs (its node, host and pid)."""
        from facesieve.runner.backends import worker_place

        self.step, self.counter = step, counter
        step.setup(device, threads)
        return worker_place(ray.get_runtime_context().get_node_id())

    def run(self, unit: Unit) -> UnitOutput:
        if self.step is None:
            raise RuntimeError("UnitWorker.run before load")
        return self.step.process(unit, self.counter.add.remote)

    def unload(self) -> None:
        import gc

        self.step = self.counter = None
        gc.collect()
