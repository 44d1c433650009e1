"""What a step is: units with ids, input digests and weights, resources, setup and process.

A *step* is one stage of the job (embed, index training, index filling, the kNN graph and its
refresh, clustering, the report). It declares its *units*: pieces of work whose id names their
outputs and marker, whose digest covers everything their outputs depend on (input content,
settings, the code's version), and whose weight counts items (images, faces) for progress.

The executor owns everything else, written once for every step: reading done-markers, skipping
units whose marker holds the same digest, removing the outputs of units that no longer exist,
running the rest in-process or on Ray actors (``setup`` once per worker, then ``process`` per
unit), retries with backoff, deadlines, progress, stats and the run summary.

A step's ``plan`` runs on the driver and may read OUT (the markers of finished units are handed
to it, so it can tell what changed); ``process`` runs on a worker, writes the unit's outputs
(each write atomic) and returns its stats and the keys it wrote; the executor writes the marker
last, so a unit is done exactly when its marker says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from facesieve.work.markers import Marker


def digest(*parts: Any) -> str:
    """16 hex digits of SHA-256 over JSON-encoded parts: the one way a change is hashed."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Resources:
    """What one worker of a step asks the scheduler for.

    ``gpus`` is the GPU share a worker takes *when the run uses GPUs* (``--device``); steps that
    never touch a GPU leave it 0. ``memory_gb`` is reserved on Ray so that memory-heavy units
    (the kNN graph, clustering) are not packed onto one node beyond what it holds.
    ``per_node`` asks for at most one CPU worker per node, running as many threads as the node
    has cores: for steps whose every worker holds the same large data (the kNN graph holds every
    embedding), so that a node holds it once.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 0.0
    per_node: bool = False


@dataclass(frozen=True)
class Unit:
    unit_id: str  # safe as a file name; the unit's outputs and marker are named after it
    digest: str  # changes exactly when the unit's outputs would change
    label: str  # what people see in logs and run.json: a shard URI, "train", ...
    weight: int = 1  # items for progress (images of a shard, faces of a kNN part)
    payload: Any = None  # what ``process`` needs; pickled to Ray workers, so keep it small


@dataclass(frozen=True)
class UnitOutput:
    """What a finished unit reports; ``stats`` numbers add up across units (nested dicts too)."""

    stats: dict[str, Any]
    outputs: list[str]  # keys written under OUT; a later run deletes them with the unit
    meta: dict[str, Any] = field(default_factory=dict)  # facts the next ``plan`` reads back


Progress = Callable[[int], None]


class Step(Protocol):
    """One stage as the executor sees it (``facesieve.runner.executor.run_step``)."""

    name: str  # the marker folder: OUT/_done/<name>/
    item_name: str  # what ``Unit.weight`` counts, for progress ("images", "faces")
    resources: Resources
    # Output folders whose files are named ``<unit_id>.<suffix>``: any file there whose unit is
    # not in the plan is removed, also debris of a crashed run that never got a marker.
    owned_prefixes: tuple[str, ...]

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        """Every unit of the step for the current input (on the driver)."""
        ...

    def setup(self, device: str, threads: int) -> None:
        """Load what every unit needs (models, an index) once per worker."""
        ...

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        """Do one unit and write its outputs; ``progress(n)`` reports n more items done."""
        ...
