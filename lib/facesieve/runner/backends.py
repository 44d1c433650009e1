"""Where units run: in the calling process, or on Ray actors that set up once and take units.

Both backends speak the same small protocol to the executor loop: ``free()`` (can it take a
unit now), ``submit(job)``, ``poll(timeout)`` (finished jobs, as events with an output or an
error), ``busy()`` and ``close()``. Deadlines: the Ray backend kills an actor whose unit runs past
``run.unit_timeout_s`` and starts a new one; in-process, the unit's progress callback raises once
the deadline has passed (a check between chunks: a single blocking read cannot be interrupted
in-process, which is why input files are opened without blocking).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from facesieve.config import RunConfig
from facesieve.errors import ConfigError, DeadlineError
from facesieve.runner.cluster import ensure_ray, require_gpus, stop_ray
from facesieve.runner.progress import Progress
from facesieve.runner.slots import READY, Slots
from facesieve.work import Step, Unit, UnitOutput
from facesieve.work.retry import FATAL, classify

log = logging.getLogger(__name__)

MIN_DECLARED_GB = 1.0  # smaller memory needs are not declared to Ray


@dataclass(frozen=True)
class Job:
    unit: Unit
    attempt: int


@dataclass(frozen=True)
class Event:
    job: Job
    output: UnitOutput | None
    error: BaseException | None
    seconds: float
    where: dict[str, Any] = field(default_factory=dict)  # the worker: node id, host, pid


@dataclass(frozen=True)
class WorkerPlan:
    count: int
    device: str  # cpu | cuda
    threads: int  # 0: the libraries' default (every core)
    options: dict[str, Any]  # Ray actor options


def worker_place(node_id: str = "") -> dict[str, Any]:
    """Where a unit ran, kept in its done-marker (``worker``): a multi-node run can show which
    node did what, and a lost node's units where they were redone."""
    import socket

    place: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if node_id:
        place["node_id"] = node_id
    return place


def _cuda_available() -> bool:
    from facesieve.faces.backends import cuda_available

    return cuda_available()


def shutdown_ray() -> None:
    """Stop the pooled workers, and the Ray runtime if ``ensure_ray`` started it (a caller's own
    session is left running)."""
    _POOL.close()
    stop_ray()


class _Pool:
    """Idle worker actors, kept between the steps of one command and handed to the next step
    that asks for the same resources: a worker process starts once, not once per step (each
    start cost 1.5-2 s on 2 cores, most of a small nightly rerun)."""

    def __init__(self) -> None:
        self.idle: dict[str, list[Any]] = {}

    @staticmethod
    def key(options: dict[str, Any]) -> str:
        return json.dumps(options, sort_keys=True)

    def take(self, options: dict[str, Any], n: int) -> list[Any]:
        """``n`` workers with these options: idle ones first; before new ones start, idle
        workers of other kinds are stopped, or they would hold the CPUs the new ones need."""
        from facesieve.runner.ray_workers import UnitWorker

        key = self.key(options)
        idle = self.idle.pop(key, [])
        taken = [idle.pop() for _ in range(min(n, len(idle)))]
        if len(taken) < n:
            self.close()
        else:
            self.idle[key] = idle
        return taken + [UnitWorker.options(**options).remote() for _ in range(n - len(taken))]

    def give_back(self, options: dict[str, Any], workers: list[Any]) -> None:
        self.idle.setdefault(self.key(options), []).extend(workers)

    def close(self) -> None:
        import sys

        ray = sys.modules.get("ray")
        for workers in self.idle.values():
            for worker in workers:
                if ray is not None and ray.is_initialized():
                    ray.kill(worker)
        self.idle.clear()


_POOL = _Pool()


def plan_workers(step: Step, run: RunConfig, n_units: int) -> WorkerPlan:
    """How many workers, on which device, with how many threads and which Ray resources."""
    wants_gpu = step.resources.gpus > 0 and run.device != "cpu"
    if run.runner == "local":
        device = "cpu"
        if wants_gpu and (run.device == "cuda" or _cuda_available()):
            device = "cuda"
        if run.device == "cuda" and device != "cuda" and step.resources.gpus > 0:
            raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU")
        return WorkerPlan(1, device, run.threads_per_worker, {})
    import ray

    ensure_ray(run)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if run.device == "cuda" and step.resources.gpus > 0:
        require_gpus(gpus, run)  # none now and none to come: exit 2 before any worker waits
        gpus = max(gpus, 1)  # an autoscaler brings them: plan one GPU's workers to start with
    use_gpu = wants_gpu and gpus > 0
    options: dict[str, Any] = {"num_cpus": step.resources.cpus}
    if step.resources.memory_gb >= MIN_DECLARED_GB:  # less: any worker has it, and undeclared
        options["memory"] = declared_memory(step.name, step.resources.memory_gb, _node_memory())
    if use_gpu:
        options["num_gpus"] = step.resources.gpus
        count = run.workers or max(1, int(gpus / step.resources.gpus))
        threads = run.threads_per_worker or max(1, cpus // max(count, 1))
        device = "cuda"
    else:
        nodes = _node_cpus()
        fit = len(nodes) if step.resources.per_node else int(cpus / max(step.resources.cpus, 1e-3))
        count = max(1, min(run.workers or max(1, fit), n_units))
        device = "cpu"
        threads = run.threads_per_worker or cpu_threads(cpus, count, nodes)
        if threads > step.resources.cpus:
            options["num_cpus"] = float(threads)  # Ray holds the cores the threads use
    options["runtime_env"] = {"env_vars": {"OMP_NUM_THREADS": str(max(threads, 1))}}
    return WorkerPlan(max(1, min(count, n_units)), device, threads, options)


def cpu_threads(cluster_cpus: int, workers: int, node_cpus: list[int]) -> int:
    """Threads per CPU worker: the cluster's cores shared among the workers that have work.

    Fewer units than cores (a folder that is one shard, a global step) would otherwise leave
    cores idle. Each worker holds as many Ray CPUs as it runs threads, so the share is lowered
    until all ``workers`` fit on the nodes together (a worker that fits nowhere would wait
    without end for one to free).
    """
    share = max(1, cluster_cpus // max(workers, 1))
    for threads in range(share, 1, -1):
        if sum(c // threads for c in node_cpus) >= workers:
            return threads
    return 1


def declared_memory(step: str, wanted_gb: float, node_bytes: list[int]) -> int:
    """Bytes of memory a worker asks Ray for: the step's estimate, at most what the largest node
    offers. A request no node can hold would wait for a worker that never starts; the estimate
    is an upper bound, so the step is tried with what there is, and a warning says so."""
    wanted = int(wanted_gb * 2**30)
    largest = max(node_bytes, default=0)
    if largest and wanted > largest:
        log.warning(
            "%s: estimated %.1f GB per worker, more than the largest Ray node offers (%.1f GB); "
            "asking for that, and the step may run out of memory",
            step,
            wanted / 2**30,
            largest / 2**30,
        )
        return largest
    return wanted


def _node_memory() -> list[int]:
    """Memory (bytes, Ray's ``memory`` resource) of every alive node."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    return [int(n["Resources"].get("memory", 0)) for n in alive]


def _node_cpus() -> list[int]:
    """CPU count of every alive node that has CPUs."""
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    counts = [int(n["Resources"].get("CPU", 0)) for n in alive]
    return [c for c in counts if c >= 1] or [os.cpu_count() or 1]


class LocalBackend:
    """One unit at a time in this process; ``poll`` runs the next submitted unit."""

    def __init__(self, step: Step, plan: WorkerPlan, deadline_s: float) -> None:
        self.step, self.deadline_s = step, deadline_s
        self.progress: Progress | None = None
        self._queue: list[Job] = []
        self.where = worker_place()
        step.setup(plan.device, plan.threads)

    def free(self) -> bool:
        return not self._queue

    def busy(self) -> bool:
        return bool(self._queue)

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def poll(self, timeout: float) -> list[Event]:
        if not self._queue:
            time.sleep(timeout)
            return []
        job = self._queue.pop(0)
        started = time.monotonic()
        deadline = started + self.deadline_s

        def report(n: int) -> None:
            if self.progress is not None:
                self.progress.add_items(n)
            if time.monotonic() > deadline:
                raise DeadlineError(f"{job.unit.label} ran past {self.deadline_s:.0f} s")

        try:
            output = self.step.process(job.unit, report)
        except Exception as exc:
            return [Event(job, None, exc, time.monotonic() - started, self.where)]
        return [Event(job, output, None, time.monotonic() - started, self.where)]

    def close(self) -> None:
        self._queue.clear()


class RayBackend:
    """Actors (from the pool) that load what the step needs once, then take one unit at a time.

    A unit goes only to a worker whose setup has finished (``runner/slots.py``). A worker that
    dies (OOM, segfault, its node lost) is replaced and its unit handed back to the executor,
    which retries it on any worker that is ready; a replacement the cluster has no room for
    stays pending without holding a unit.
    """

    def __init__(
        self,
        step: Step,
        plan: WorkerPlan,
        deadline_s: float,
        start_timeout_s: float,
        retries: int = 4,
    ) -> None:
        import ray

        self.step, self.plan, self.deadline_s = step, plan, deadline_s
        self.start_timeout_s = start_timeout_s
        self.progress: Progress | None = None
        self._ray = ray
        self._counter = _driver_node_counter()
        self._items = 0
        log.info(
            "%s: %d Ray worker(s) on %s (%s)",
            step.name,
            plan.count,
            plan.device,
            {k: v for k, v in plan.options.items() if k != "runtime_env"},
        )
        self._workers = _POOL.take(plan.options, plan.count)
        self._slots = Slots(len(self._workers), start_timeout_s, time.monotonic())
        self._loads: dict[int, Any] = {w: self._load(x) for w, x in enumerate(self._workers)}
        self._busy: dict[int, tuple[Any, Job, float]] = {}  # worker index -> (ref, job, started)
        # at most this many setups may fail (a setup error that is not fatal, a worker that dies
        # while it loads) before the step stops: a step whose setup always fails must end
        self._load_failures_left = max(retries, 1) * len(self._workers)
        # Wait for the first worker: an impossible resource request (a GPU the cluster does not
        # have) must end in an error, not in a wait without end.
        ready, _ = ray.wait(list(self._loads.values()), num_returns=1, timeout=start_timeout_s)
        if not ready:
            self.close()
            raise ConfigError(
                f"no Ray worker for step {step.name} started within {start_timeout_s:.0f} s: "
                f"does the cluster have a node with {plan.options.get('num_gpus', 0)} GPU(s), "
                f"{plan.options.get('num_cpus')} CPU(s) and "
                f"{plan.options.get('memory', 0) / 2**30:.1f} GB of memory free?"
            )
        self._settle_loads(ready)

    def _load(self, worker: Any) -> Any:
        return worker.load.remote(self.step, self.plan.device, self.plan.threads, self._counter)

    def _replace(self, w: int) -> None:
        """A new worker in place of one that died or ran past its deadline."""
        from facesieve.runner.ray_workers import UnitWorker

        self._ray.kill(self._workers[w])  # it may only look dead (unreachable): never two
        self._workers[w] = UnitWorker.options(**self.plan.options).remote()
        self._slots.lost(w)
        self._loads[w] = self._load(self._workers[w])

    def _settle_loads(self, refs: list[Any]) -> None:
        """Mark the workers whose setup finished as ready; replace those that failed."""
        from ray.exceptions import RayError, RayTaskError

        by_ref = {ref: w for w, ref in self._loads.items()}
        for ref in refs:
            w = by_ref.get(ref)
            if w is None:
                continue
            del self._loads[w]
            try:
                where = self._ray.get(ref)
            except RayError as exc:
                cause = exc.cause if isinstance(exc, RayTaskError) else exc
                cause = cause if isinstance(cause, BaseException) else exc
                self._load_failures_left -= 1
                if classify(cause) == FATAL or self._load_failures_left < 0:
                    raise cause from None
                log.warning(
                    "%s: a worker failed to start (%s); starting a new one",
                    self.step.name,
                    str(cause).splitlines()[0][:200] if str(cause) else type(cause).__name__,
                )
                self._replace(w)
                continue
            self._slots.loaded(w, where if isinstance(where, dict) else {}, time.monotonic())

    def free(self) -> bool:
        return self._slots.free()

    def busy(self) -> bool:
        return bool(self._busy)

    def submit(self, job: Job) -> None:
        w = self._slots.take()
        self._busy[w] = (self._workers[w].run.remote(job.unit), job, time.monotonic())

    def poll(self, timeout: float) -> list[Event]:
        ray = self._ray
        from ray.exceptions import RayError, RayTaskError

        events: list[Event] = []
        refs = {ref: w for w, (ref, _, _) in self._busy.items()}
        waiting = list(refs) + list(self._loads.values())
        ready: list[Any] = []
        if waiting:
            ready, rest = ray.wait(waiting, num_returns=1, timeout=timeout)
            if ready and rest:
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        else:
            time.sleep(timeout)
        self._settle_loads([ref for ref in ready if ref not in refs])
        for ref in (r for r in ready if r in refs):
            w = refs[ref]
            _, job, started = self._busy.pop(w)
            where = self._slots.where(w)
            try:
                output = ray.get(ref)
            except RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                self._slots.finished(w)
                events.append(Event(job, None, cause, time.monotonic() - started, where))
            except RayError as exc:  # the worker died (OOM, segfault, node lost)
                log.warning(
                    "%s: a worker died on %s (%s); starting a new one",
                    self.step.name,
                    job.unit.label,
                    type(exc).__name__,
                )
                self._replace(w)
                events.append(Event(job, None, exc, time.monotonic() - started, where))
            else:
                self._slots.finished(w)
                events.append(Event(job, output, None, time.monotonic() - started, where))
        now = time.monotonic()
        for w, (_, job, started) in list(self._busy.items()):
            if now - started > self.deadline_s:
                log.warning(
                    "%s: %s ran past %.0f s; stopping its worker",
                    self.step.name,
                    job.unit.label,
                    self.deadline_s,
                )
                where = self._slots.where(w)
                self._replace(w)
                del self._busy[w]
                error = DeadlineError(f"{job.unit.label} ran past {self.deadline_s:.0f} s")
                events.append(Event(job, None, error, now - started, where))
        if self._slots.stuck(now):
            raise ConfigError(
                f"step {self.step.name}: no Ray worker could start for {self.start_timeout_s:.0f} "
                "s (run.start_timeout_s) after its workers were lost: does the cluster still "
                f"have a node with {self.plan.options.get('num_cpus')} CPU(s) free?"
            )
        if self.progress is not None:
            self.progress.items_done(self._items_total())
        return events

    def _items_total(self) -> int:
        """Items counted by the workers so far; the last count if the counter cannot answer."""
        from ray.exceptions import GetTimeoutError, RayError

        try:
            self._items = int(self._ray.get(self._counter.total.remote(), timeout=10))
        except (GetTimeoutError, RayError) as exc:
            log.debug("progress counter unavailable: %s", exc)
        return self._items

    def close(self) -> None:
        """Busy workers (a failed run) and workers still starting are stopped; idle ones drop
        the step and go back to the pool for the next step."""
        keep = [w for w in range(len(self._workers)) if self._slots.state(w) == READY]
        for w in range(len(self._workers)):
            if w not in keep:
                self._ray.kill(self._workers[w])
        idle = [self._workers[w] for w in keep]
        for worker in idle:
            worker.unload.remote()
        _POOL.give_back(self.plan.options, idle)
        self._ray.kill(self._counter)
        self._busy.clear()
        self._loads.clear()


def _driver_node_counter() -> Any:
    """The progress counter, on the driver's node: a lost worker node must not take it along
    (a call to a dead counter raised out of the executor loop)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from facesieve.runner.ray_workers import ProgressCounter

    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:  # a Ray client driver has no node of its own: anywhere will do
        return ProgressCounter.remote()
    strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=True)
    return ProgressCounter.options(scheduling_strategy=strategy).remote()
