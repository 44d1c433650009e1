"""The checks that turn Ray's endless waits into errors: an address nothing answers at, and a
GPU that no node has and no autoscaler can bring (facesieve/runner/cluster.py)."""

from __future__ import annotations

import socket
import time

import pytest

from facesieve.errors import ConfigError
from facesieve.runner import cluster


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_closed_port_is_an_error_in_well_under_a_second() -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        cluster.probe(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 1.0


def test_an_open_port_passes_the_probe() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cluster.probe(f"127.0.0.1:{s.getsockname()[1]}")


def test_addresses_resolve_to_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.resolve_address("ray://head.example:10001") == "head.example:10001"
    assert cluster.resolve_address("10.0.0.5:6379") == "10.0.0.5:6379"
    with pytest.raises(ConfigError, match="not host:port"):
        cluster.resolve_address("no-port-here")
    # inside a submitted job, `auto` is the job server's RAY_ADDRESS
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    assert cluster.resolve_address("auto") == "10.0.0.7:6379"


@pytest.mark.parametrize(
    ("gpus_now", "can_add", "verdict"),
    [(1, None, "ok"), (0, None, "none"), (0, 0, "none"), (0, 8, "wait"), (0, -1, "wait")],
)
def test_gpu_verdict(gpus_now: int, can_add: int | None, verdict: str) -> None:
    assert cluster.gpu_verdict(gpus_now, can_add) == verdict


def test_a_read_only_monitor_is_no_autoscaler() -> None:
    """The shapes below are the v1 monitor's reports, as read from a local runtime (read-only:
    each node is its own type) and as a launcher config names its types."""
    node = "e28df7917dbdc94a5197f24901a885f6a3ee8571764ec4b45c600073"
    assert cluster.readonly_or_unknown({"node_type_mapping": {node: f"node_{node}"}}) is None
    launcher = {"node_type_mapping": {node: "head"}}
    assert cluster.readonly_or_unknown(launcher) == -1
    assert cluster._v1_report(b'{"load_metrics_report": {}}') is None  # no autoscaler pass yet
    assert cluster._v1_report(b"not json") is None


def _nodes(n: int) -> list[dict]:
    return [{"Alive": True, "NodeID": str(i)} for i in range(n)] + [{"Alive": False}]


def test_local_paths_on_several_nodes_are_refused_unless_shared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ray = pytest.importorskip("ray")
    from facesieve.config import RunConfig

    monkeypatch.setattr(ray, "nodes", lambda: _nodes(3))
    with pytest.raises(ConfigError, match=r"local path\(s\) /data/out on a Ray cluster of 3"):
        cluster.require_shared_paths(["/data/out"], RunConfig())
    cluster.require_shared_paths(["/data/out"], RunConfig(shared_paths=True))
    cluster.require_shared_paths([], RunConfig())  # s3:// roots only
    monkeypatch.setattr(ray, "nodes", lambda: _nodes(1))  # one node alive: its own disk
    cluster.require_shared_paths(["/data/out"], RunConfig())


def test_a_cluster_listening_on_loopback_only_is_joined_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ray")
    from ray._private import ray_constants, services

    outward = services.get_node_ip_address()
    if cluster.is_loopback(outward):
        pytest.skip("this machine has no address but loopback")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cluster.keep_loopback(f"127.0.0.1:{s.getsockname()[1]}")
    assert ray_constants.ENABLE_RAY_CLUSTER is False
    assert services.get_node_ip_address() == "127.0.0.1"  # what ray.init now connects to
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    cluster.keep_loopback("10.1.2.3:6379")  # not loopback: Ray's way
    assert ray_constants.ENABLE_RAY_CLUSTER is True
