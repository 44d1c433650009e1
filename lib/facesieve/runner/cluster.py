"""Joining a Ray cluster, and what it can give: errors in seconds instead of waits without end.

Two waits in Ray have no deadline of their own. ``ray.init`` on an address where no Ray cluster
answers retries forever (measured: still retrying after 300 s against a closed port on
127.0.0.1), so the address is resolved and probed with a plain TCP connect first. And an actor
that asks for a GPU the cluster cannot have stays pending forever, so ``--device cuda`` checks
what the cluster can give before any worker is asked for: a cluster without an autoscaler that
has no GPU now never will, which is an error at once; a cluster whose autoscaler can add GPU
nodes (GPU workers that start at zero) is given ``run.start_timeout_s`` to bring one, the wait the
Ray backend puts on its first worker.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Sequence

from facesieve.config import RunConfig
from facesieve.errors import ConfigError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # a TCP connect to the cluster's GCS port; more is a network problem
STATUS_WAIT_S = 12.0  # the v1 autoscaler monitor reports every 5 s

_started_ray = False


def resolve_address(address: str) -> str:
    """``host:port`` of the GCS that ``ray.init(address)`` would join. ``auto`` reads RAY_ADDRESS
    (set by Ray's job server inside a submitted job), then the latest ``ray start`` of this
    machine, then any GCS process running here; ``ray://host:port`` is a Ray client address."""
    if address.startswith("ray://"):
        return address[len("ray://") :].split("/", 1)[0]
    from ray._private import services

    try:
        found = services.get_ray_address_from_environment(address, None)
    except ConnectionError as exc:
        raise ConfigError(f"no Ray cluster to join at --ray-address {address}: {exc}") from exc
    if not found or ":" not in found:
        raise ConfigError(f"--ray-address {address} is not host:port, auto or ray://host:port")
    return found.removeprefix("ray://").split("/", 1)[0]


def probe(hostport: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ConfigError unless something accepts TCP connections at ``hostport``."""
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        reason = f"no answer within {timeout_s:.0f} s" if isinstance(exc, TimeoutError) else exc
        raise ConfigError(
            f"cannot reach the Ray cluster at {hostport} ({reason}): is the head running, "
            "and is its GCS port (6379 by default) open to this machine?"
        ) from exc


def ensure_ray(run: RunConfig) -> None:
    """Join ``run.ray_address`` or start a local runtime, once, when a step first needs Ray."""
    global _started_ray
    import ray

    if ray.is_initialized():
        return
    if run.ray_address and run.ray_address != "local":
        hostport = resolve_address(run.ray_address)
        probe(hostport)
        keep_loopback(hostport)
        log.info("joining the Ray cluster at %s", hostport)
    else:
        log.info("starting a local Ray runtime")
    try:
        ray.init(
            address=run.ray_address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=True,
        )
    except ConnectionError as exc:
        raise ConfigError(f"cannot join the Ray cluster at {run.ray_address}: {exc}") from exc
    _started_ray = True


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def keep_loopback(hostport: str) -> None:
    """Let ``ray.init`` join a cluster that listens on loopback only.

    Ray rewrites a loopback address to this machine's outward IP before it connects
    (``services.resolve_ip_for_localhost``); a cluster whose nodes were started with
    ``--node-ip-address 127.0.0.1`` (one machine, nothing reachable from outside) does not listen
    there, and ``ray.init`` then retries without end (measured: still waiting after 40 s). When
    only the loopback address answers, Ray's own single-machine switch (the one it uses on macOS
    and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps loopback as this node's address.
    A cluster that also listens on the outward IP is joined the way Ray always does.
    """
    host, _, port = hostport.rpartition(":")
    if not is_loopback(host):
        return
    from ray._private import ray_constants, services

    outward = services.get_node_ip_address()  # what ray.init would connect to
    if is_loopback(outward):
        return
    try:
        probe(f"{outward}:{port}", timeout_s=2.0)
    except ConfigError:
        log.info("the Ray cluster at %s listens on loopback only; joining it there", hostport)
        ray_constants.ENABLE_RAY_CLUSTER = False  # read at call time by get_node_ip_address


def require_shared_paths(local_roots: Sequence[str], run: RunConfig) -> None:
    """Refuse local paths on a cluster of several nodes, unless they are declared shared.

    Every worker reads the input and writes the output root itself: on a node other than the
    driver's, a local path names a folder of that node, so outputs would be scattered over the
    nodes (or inputs missing there) and the run would look successful from the driver.
    ``run.shared_paths`` says the paths are on storage every node mounts at the same place.
    Checked against the nodes alive when a step starts its workers.
    """
    if not local_roots or run.shared_paths:
        return
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) <= 1:
        return
    raise ConfigError(
        f"local path(s) {', '.join(local_roots)} on a Ray cluster of {len(nodes)} nodes: each "
        "node would read and write its own disk. Use s3:// roots, or declare the paths shared "
        "(mounted at the same place on every node) with --set run.shared_paths=true"
    )


def stop_ray() -> None:
    """Disconnect, or stop the local runtime, if ``ensure_ray`` started it (a caller's own Ray
    session is left running)."""
    global _started_ray
    if _started_ray:
        import ray

        ray.shutdown()
        _started_ray = False


def autoscaler_gpus(report_wait_s: float = STATUS_WAIT_S) -> int | None:
    """GPUs the joined cluster's autoscaler could bring up (-1: an autoscaler runs, its limit is
    not published), or None when nothing can add nodes (a fixed set of nodes)."""
    from ray._private import state
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        limits = state.state.get_max_resources_from_cluster_config()  # autoscaler v2, KubeRay
    except Exception:  # an older GCS without the key: look at the v1 monitor's report below
        limits = None
    if limits is not None:
        return int(limits.get("GPU", 0))
    deadline = time.monotonic() + report_wait_s
    while True:
        report = _v1_report(_internal_kv_get(b"__autoscaling_status"))
        if report is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # the monitor reports every few seconds; the first may not be out yet
    return None if report is None else readonly_or_unknown(report)


def _v1_report(raw: bytes | None) -> dict | None:
    try:
        report = json.loads(raw)["autoscaler_report"] if raw else None
    except (ValueError, KeyError, TypeError):
        return None
    return report if isinstance(report, dict) and report.get("node_type_mapping") else None


def readonly_or_unknown(report: dict) -> int | None:
    """Every head runs Ray's v1 monitor. Without an autoscaling config it is read-only and names
    each node type ``node_<node id>`` (ray.autoscaler._private.util.format_readonly_node_type):
    None. Node types of a launcher config (``head``, ``gpu_worker``): -1, limit unknown."""
    mapping = report["node_type_mapping"]
    if all(kind == f"node_{node}" for node, kind in mapping.items()):
        return None
    return -1


def gpu_verdict(gpus_now: int, can_add: int | None) -> str:
    """``ok`` (GPUs are there), ``wait`` (an autoscaler may add some) or ``none`` (never)."""
    if gpus_now > 0:
        return "ok"
    if can_add is None or can_add == 0:
        return "none"
    return "wait"


def require_gpus(gpus_now: int, run: RunConfig) -> None:
    """``--device cuda`` on a cluster that has no GPU and cannot get one: exit 2 now."""
    # a runtime that ensure_ray started here has no autoscaler; a joined cluster may have one
    # (RAY_ADDRESS: ray.init joins that cluster even without --ray-address)
    joined = run.ray_address not in (None, "local") or bool(os.environ.get("RAY_ADDRESS"))
    can_add = autoscaler_gpus() if gpus_now == 0 and joined else None
    verdict = gpu_verdict(gpus_now, can_add)
    where = f"the Ray cluster at {run.ray_address}" if run.ray_address else "the local Ray runtime"
    if verdict == "none":
        why = "no autoscaler runs" if can_add is None else "its autoscaler has no GPU node type"
        raise ConfigError(
            f"--device cuda was asked for but {where} has no GPU and {why}; "
            "use --device auto or cpu, or join a cluster with GPU nodes"
        )
    if verdict == "wait":
        log.warning(
            "no GPU in %s yet; waiting up to %.0f s (run.start_timeout_s) for the autoscaler "
            "to start a GPU node",
            where,
            run.start_timeout_s,
        )
