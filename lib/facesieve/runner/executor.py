"""The one executor every step runs through (docs/ARCHITECTURE.md).

``run_step`` reads the step's done-markers, asks the step for its units, removes what belongs to
units that no longer exist, skips units whose marker holds the same digest, and runs the rest on
a backend (in-process or Ray actors). Failures are sorted (``work.retry.classify``): fatal ones
stop the run, permanent ones fail their unit at once, transient ones are retried with
exponential backoff. Each unit has a deadline. The marker is written last, by the driver, after
the unit's outputs; outputs a unit wrote before and no longer writes are then deleted.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from facesieve.config import RunConfig
from facesieve.errors import ConfigError
from facesieve.redact import redact_text
from facesieve.runner.backends import Event, Job, LocalBackend, RayBackend, plan_workers
from facesieve.runner.cluster import require_shared_paths
from facesieve.runner.progress import Progress
from facesieve.storage.base import Store
from facesieve.work import Marker, Step, Unit, read_markers, write_marker
from facesieve.work.markers import marker_key
from facesieve.work.retry import FATAL, PERMANENT, Backoff, classify, with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnitFailure:
    unit_id: str
    label: str
    error: str
    attempts: int
    kind: str  # permanent | transient (retries exhausted)


@dataclass
class StepResult:
    step: str
    units: int
    skipped: int
    processed: int
    removed: int  # units that no longer exist and whose outputs were deleted
    failed: list[UnitFailure]
    totals: dict[str, Any]  # stats summed over every unit of the plan, done before or now
    items: int  # items (images, faces) processed by this run
    seconds: float
    markers: dict[str, Marker] = field(default_factory=dict, repr=False)  # every done unit

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("markers")
        data["seconds"] = round(self.seconds, 3)
        return data


def add_stats(totals: dict[str, Any], stats: dict[str, Any]) -> None:
    """Sum stats: numbers add, nested dicts add key-wise."""
    for key, value in stats.items():
        if isinstance(value, dict):
            add_stats(totals.setdefault(key, {}), value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            totals[key] = round(totals.get(key, 0) + value, 3)


def describe(exc: BaseException) -> str:
    """The first line of an error, as logged and kept in run.json: credentials removed (a
    library's message may quote a signed URL or an endpoint with user:password@)."""
    text = str(exc).strip().splitlines()
    return redact_text(f"{type(exc).__name__}: {text[0] if text else ''}")[:500]


def _remove_stale(out: Store, step: Step, units: list[Unit], done: dict[str, Marker]) -> int:
    """Delete markers and outputs of units that are not in the plan, and orphaned outputs."""
    ids = {u.unit_id for u in units}
    stale = [m for uid, m in done.items() if uid not in ids]
    for marker in stale:
        for key in marker.outputs:
            out.delete(key)
        out.delete(marker_key(step.name, marker.unit_id))
    for prefix in step.owned_prefixes:
        for info in out.list(prefix):
            name = info.key[len(prefix) :].lstrip("/")
            if "/" not in name and name.split(".", 1)[0] not in ids:
                out.delete(info.key)
    if stale:
        log.info("%s: removed the outputs of %d units that no longer exist", step.name, len(stale))
    return len(stale)


def run_step(
    step: Step,
    out: Store,
    run: RunConfig,
    show_progress: bool | None = None,
    guard: Callable[[], None] | None = None,
    local_roots: Sequence[str] = (),
) -> StepResult:
    """Run every unit of ``step`` that is not done; see the module docstring.

    ``guard`` is called between units and may raise to stop the step (the run's lease check).
    ``local_roots``: the run's local input and output paths, refused on a multi-node Ray
    cluster unless ``run.shared_paths`` (``runner/cluster.py``).
    """
    started = time.monotonic()
    backoff = Backoff(run.retry_backoff_s)

    def retried(fn: Callable[[], Any], what: str) -> Any:
        return with_retries(fn, what, backoff, run.retries)

    done: dict[str, Marker] = retried(lambda: read_markers(out, step.name), "reading markers")
    units = retried(lambda: step.plan(done), f"planning {step.name}")
    if len({u.unit_id for u in units}) != len(units):
        raise RuntimeError(f"step {step.name} planned duplicate unit ids")
    removed = retried(lambda: _remove_stale(out, step, units, done), "removing stale outputs")
    todo = [u for u in units if u.unit_id not in done or done[u.unit_id].digest != u.digest]
    skipped = len(units) - len(todo)
    log.info("%s: %d units, %d done, %d to run", step.name, len(units), skipped, len(todo))

    failed: list[UnitFailure] = []
    fresh: dict[str, Marker] = {}
    items = 0
    if todo:
        fresh, failed, items = _execute(
            step, out, run, todo, done, show_progress, guard, retried, local_roots
        )
    digests = {u.unit_id: u.digest for u in units}
    markers = {uid: m for uid, m in done.items() if digests.get(uid) == m.digest}
    markers.update(fresh)
    totals: dict[str, Any] = {}
    for marker in markers.values():
        add_stats(totals, marker.stats)
    return StepResult(
        step=step.name,
        units=len(units),
        skipped=skipped,
        processed=len(fresh),
        removed=removed,
        failed=failed,
        totals=totals,
        items=items,
        seconds=time.monotonic() - started,
        markers=markers,
    )


def _execute(
    step: Step,
    out: Store,
    run: RunConfig,
    todo: list[Unit],
    done: dict[str, Marker],
    show_progress: bool | None,
    guard: Callable[[], None] | None,
    retried: Callable[[Callable[[], Any], str], Any],
    local_roots: Sequence[str],
) -> tuple[dict[str, Marker], list[UnitFailure], int]:
    backoff = Backoff(run.retry_backoff_s)
    workers = plan_workers(step, run, len(todo))
    if run.runner == "local":
        backend: LocalBackend | RayBackend = LocalBackend(step, workers, run.unit_timeout_s)
    else:
        require_shared_paths(local_roots, run)  # Ray is joined now: its nodes are known
        backend = RayBackend(step, workers, run.unit_timeout_s, run.start_timeout_s, run.retries)
    progress = Progress(
        step.name,
        len(todo),
        # items are counted only when every unit knows its weight (a new tar does not)
        sum(u.weight for u in todo) if step.item_name and all(u.weight for u in todo) else 0,
        step.item_name or "units",
        run.progress_interval_s,
        terminal=show_progress,
    )
    backend.progress = progress
    fresh: dict[str, Marker] = {}
    failed: list[UnitFailure] = []
    ready = [Job(u, 1) for u in todo]
    ready.reverse()  # pop() from the end keeps the plan's order
    waiting: list[tuple[float, int, Job]] = []  # (time it may run again, tiebreak, job)
    order = itertools.count()
    try:
        while ready or waiting or backend.busy():
            if guard is not None:
                guard()
            now = time.monotonic()
            while waiting and waiting[0][0] <= now:
                ready.append(heapq.heappop(waiting)[2])
            while ready and backend.free():
                backend.submit(ready.pop())
            timeout = min(0.5, max(0.0, waiting[0][0] - now)) if waiting else 0.5
            for event in backend.poll(timeout):
                if event.error is None:
                    fresh[event.job.unit.unit_id] = _commit(step, out, event, done, retried)
                    progress.unit_done()
                    continue
                kind = classify(event.error)
                job = event.job
                error = describe(event.error)
                if kind == FATAL:
                    raise event.error
                if kind == PERMANENT or job.attempt > run.retries:
                    log.error(
                        "%s: %s failed after %d attempt(s): %s",
                        step.name,
                        job.unit.label,
                        job.attempt,
                        error,
                    )
                    failed.append(
                        UnitFailure(job.unit.unit_id, job.unit.label, error, job.attempt, kind)
                    )
                    progress.unit_done()
                    continue
                wait = backoff.delay(job.attempt)
                log.warning(
                    "%s: %s attempt %d failed (%s); retrying in %.0f s",
                    step.name,
                    job.unit.label,
                    job.attempt,
                    error,
                    wait,
                )
                heapq.heappush(
                    waiting, (time.monotonic() + wait, next(order), Job(job.unit, job.attempt + 1))
                )
            progress.tick()
    finally:
        backend.close()
        progress.close()
    return fresh, failed, progress.done_items


def _commit(
    step: Step,
    out: Store,
    event: Event,
    done: dict[str, Marker],
    retried: Callable[[Callable[[], Any], str], Any],
) -> Marker:
    """Write the unit's marker, then delete outputs its previous version wrote and this did not."""
    unit, output = event.job.unit, event.output
    if output is None:
        raise ConfigError(f"step {step.name} returned no output for {unit.unit_id}")
    marker = Marker(
        step=step.name,
        unit_id=unit.unit_id,
        label=unit.label,
        digest=unit.digest,
        stats=output.stats,
        outputs=list(output.outputs),
        meta=output.meta,
        seconds=round(event.seconds, 3),
        attempts=event.job.attempt,
        finished_at=round(time.time(), 3),
        worker=event.where,
    )
    retried(lambda: write_marker(out, marker), f"writing the marker of {unit.unit_id}")
    previous = done.get(unit.unit_id)
    if previous is not None:
        for key in set(previous.outputs) - set(marker.outputs):
            retried(lambda key=key: out.delete(key), f"deleting {key}")
    return marker
