"""CPU threads per worker: fewer units than cores must not leave cores idle, and every worker
must fit on some node."""

import pytest

from facesieve.runner.backends import cpu_threads


@pytest.mark.parametrize(
    ("cluster", "workers", "nodes", "threads"),
    [
        (2, 1, [2], 2),  # a folder that is one shard: both cores
        (2, 2, [2], 1),  # two shards: one core each
        (16, 3, [16], 5),  # cpus // workers
        (8, 2, [4, 4], 4),  # one worker per node
        (8, 3, [4, 4], 2),  # 8 // 3 = 2: two workers of 2 fit on each node
        (5, 2, [3, 1, 1], 1),  # a worker of 2 fits only on the 3-CPU node: one each instead
        (3, 1, [1, 1, 1], 1),  # a three-node cluster of 1-CPU nodes
        (4, 8, [4], 1),  # more workers than cores: never below one
    ],
)
def test_cpu_threads(cluster: int, workers: int, nodes: list[int], threads: int) -> None:
    got = cpu_threads(cluster, workers, nodes)
    assert got == threads
    assert sum(n // got for n in nodes) >= min(workers, sum(nodes))


@pytest.mark.parametrize(
    ("per_node", "nodes", "units", "count", "threads"),
    [
        (True, [4, 4], 10, 2, 4),  # one worker per node, all of its cores
        (True, [2], 10, 1, 2),  # this machine: one worker, both cores
        (True, [4, 4], 1, 1, 4),  # one unit: one worker, as big as a node
        (False, [4, 4], 10, 8, 1),  # an ordinary step: a worker per core
    ],
)
def test_a_per_node_step_gets_a_worker_per_node_with_its_cores(
    monkeypatch: pytest.MonkeyPatch,
    per_node: bool,
    nodes: list[int],
    units: int,
    count: int,
    threads: int,
) -> None:
    """The kNN graph's workers each hold every embedding: one per node, not one per core."""
    ray = pytest.importorskip("ray")
    from facesieve.config import RunConfig
    from facesieve.runner import backends
    from facesieve.work import Resources

    monkeypatch.setattr(backends, "ensure_ray", lambda run: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": float(sum(nodes))})
    monkeypatch.setattr(backends, "_node_cpus", lambda: nodes)
    monkeypatch.setattr(backends, "_node_memory", lambda: [8 * 2**30 for _ in nodes])

    class Step:
        name = "knn"
        resources = Resources(cpus=1.0, memory_gb=2.0, per_node=per_node)

    plan = backends.plan_workers(Step(), RunConfig(runner="ray", device="cpu"), units)  # type: ignore[arg-type]
    assert (plan.count, plan.threads) == (count, threads)
    assert plan.options["num_cpus"] == float(max(threads, 1))  # Ray holds the cores it uses
    assert plan.options["memory"] == 2 * 2**30


def test_a_memory_estimate_above_every_node_asks_for_the_largest_node(caplog) -> None:
    """An estimate no node can hold would leave the step waiting for a worker that never
    starts (the clean step at 3M faces asked for 21.5 GB, more than Ray offered on the 24 GB
    development machine)."""
    from facesieve.runner.backends import declared_memory

    gb = 2**30
    assert declared_memory("clean", 3.0, [16 * gb, 8 * gb]) == 3 * gb
    assert not caplog.records
    assert declared_memory("clean", 21.5, [16 * gb, 8 * gb]) == 16 * gb
    assert "clean: estimated 21.5 GB" in caplog.text and "16.0 GB" in caplog.text
    assert declared_memory("clean", 2.0, []) == 2 * gb  # no node known yet: the estimate
