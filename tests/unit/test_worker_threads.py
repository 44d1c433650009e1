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
