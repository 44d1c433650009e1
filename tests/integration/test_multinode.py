"""`facesieve run` on a Ray cluster of three nodes (``ray.cluster_utils.Cluster``, all on
127.0.0.1), input and outputs in a real SeaweedFS S3 bucket: every node does work, and a node
removed while it runs a unit does not change what the run writes.

The cluster is the test's own: its temp dir (``RAY_TMPDIR``, which also holds Ray's "current
cluster" file, so no other Ray user on this machine joins it), its own auth token (token auth
on, ``RAY_AUTH_TOKEN_PATH`` in that dir, given to the nodes and to every driver the test starts,
so neither this machine's ``~/.ray/auth_token`` nor what an earlier test left in the environment
decides who may join), and it is stopped with
``cluster.shutdown()`` (never ``ray stop``, which would stop every Ray runtime on the machine).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

from tests.integration.helpers import S3_ENV, s3_client  # noqa: E402

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "multinode"
SHARD_SIZE = 6  # the demo's ~110 images in ~20 shards: every node gets several
START_DEADLINE_S = 60
RUN_DEADLINE_S = 300
MARKERS_DEADLINE_S = 150

# what legitimately differs between two runs of the same input (timings, where units ran, how
# often they were tried, the run's id and output root): everything else must be equal
MARKER_RUN_FIELDS = ("seconds", "finished_at", "attempts", "worker")


@pytest.fixture(scope="module")
def cluster3(s3: Any) -> Iterator[Any]:
    """Three nodes of one CPU each. Workers take S3 credentials and the endpoint from their
    node's environment, as on a real cluster (facesieve never ships credentials to them): the
    nodes start with the test server's."""
    from ray.cluster_utils import Cluster

    temp = Path(tempfile.mkdtemp(prefix="fsmn-", dir="/tmp"))  # short: Ray's socket paths
    (temp / "token").write_text(secrets.token_hex(32))
    node_env = S3_ENV | _auth_env(temp) | {"RAY_TMPDIR": str(temp), "AWS_ENDPOINT_URL": s3.endpoint}
    saved = {k: os.environ.get(k) for k in (*node_env, "RAY_AUTH_TOKEN")}
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update(node_env)
    _reload_ray_auth()
    cluster = None
    try:
        node = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
        cluster = Cluster(
            initialize_head=True,
            head_node_args={**node, "include_dashboard": False, "resources": {"node_0": 1}},
        )
        for i in (1, 2):
            cluster.add_node(**node, resources={f"node_{i}": 1})
        cluster.wait_for_nodes(timeout=START_DEADLINE_S)
        cluster.auth_env = _auth_env(temp)  # for the drivers the tests start
        yield cluster
    finally:
        if cluster is not None:
            cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reload_ray_auth()
        left = _processes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, left


def _processes_under(temp: Path) -> list[str]:
    """Live processes whose command line names the cluster's temp dir (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(temp) in line:
            found.append(f"{entry.name}: {line[:200]}")
    return found


def _reload_ray_auth() -> None:
    """Make this process read the auth settings of its environment again: Ray reads them once
    (and a local ``ray.init()`` of an earlier test turns token mode on for the whole process),
    so changing the environment alone does not change what ``Cluster`` uses. The same two
    calls as Ray's own test helpers (ray._private.authentication_test_utils)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _auth_env(temp: Path) -> dict[str, str]:
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(temp / "token")}


def _driver_env(cluster: Any, s3_endpoint: str) -> dict[str, str]:
    """This process's environment without any Ray or AWS setting of its own, plus the test
    server's credentials and the cluster's token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    return env | S3_ENV | cluster.auth_env | {
        "PYTHONPATH": str(ROOT / "lib"), "AWS_ENDPOINT_URL": s3_endpoint,
    }  # fmt: skip


def _command(cluster: Any, s3: Any, out: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "facesieve.cli.main", "run", f"s3://{BUCKET}/in", "--out", out,
        "--ray-address", cluster.address, "--s3-endpoint", s3.endpoint, "--device", "cpu",
        "--shard-size", str(SHARD_SIZE),
        "--set", "run.retry_backoff_s=0.5", *extra,
    ]  # fmt: skip


def _objects(client: Any, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix``, by key relative to it."""
    found: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            found[item["Key"][len(prefix) :]] = body
    return found


def _markers(client: Any, prefix: str, step: str) -> list[dict[str, Any]]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}_done/{step}/")
    return [
        json.loads(client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())
        for o in listed.get("Contents", [])
    ]


def _upload_input(client: Any, data: Path) -> int:
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET)
    files = sorted(p for p in data.rglob("*") if p.is_file())
    for path in files:
        client.upload_file(str(path), BUCKET, f"in/{path.relative_to(data).as_posix()}")
    return len(files)


def _untimed(value: Any) -> Any:
    """``value`` without timings and clock times (keys named ``seconds``, ending in ``_s`` or
    ``_at``), at any depth."""
    if isinstance(value, dict):
        timed = ("_s", "_at")
        return {
            k: _untimed(v) for k, v in value.items() if k != "seconds" and not k.endswith(timed)
        }
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _named(body: bytes, names: dict[str, str]) -> bytes:
    for text, name in names.items():
        body = body.replace(text.encode(), name.encode())
    return body


def _comparable(key: str, body: bytes, names: dict[str, str]) -> Any:
    """A file's content with what may differ between two equal runs left out; ``names``
    replace what names the run (its output root, the report id made from it)."""
    if key.endswith(".parquet"):
        return pq.read_table(io.BytesIO(body)).to_pylist()
    body = _named(body, names)
    if key.startswith("_done/"):
        marker = json.loads(body)
        return _untimed({k: v for k, v in marker.items() if k not in MARKER_RUN_FIELDS})
    if key.endswith(".json"):
        return _untimed(json.loads(body))
    return body


def _run_json(body: bytes, names: dict[str, str]) -> dict[str, Any]:
    """run.json without timings and ids: what the runs did, not how long it took."""
    info = _untimed(json.loads(_named(body, names)))
    for step in info["steps"].values():
        step.pop("items")  # items processed, a killed attempt's included
    keep = ("command", "input", "exit_code", "stopped", "failed", "ledger", "totals", "report")
    return {"steps": info["steps"], **{k: info.get(k) for k in keep}}


def _wait_for_work_on_every_node(
    client: Any, prefix: str, nodes: set[str], proc: subprocess.Popen, total: int
) -> list[dict[str, Any]]:
    """Embed markers once each node has finished a unit, while units are left for every worker
    (3 running, 2 waiting), so the node removed next is running one."""
    deadline = time.monotonic() + MARKERS_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before every node worked")
        markers = _markers(client, prefix, "embed")
        if {m["worker"]["node_id"] for m in markers} == nodes:
            assert len(markers) <= total - 5, "the run went too far before every node worked"
            return markers
        time.sleep(0.05)
    raise TimeoutError(f"not every node finished an embed unit within {MARKERS_DEADLINE_S} s")


def test_local_paths_on_a_multi_node_cluster_are_refused_unless_declared_shared(
    cluster3: Any, s3: Any, demo_data: Path, tmp_path: Path
) -> None:
    """Each node would write its own disk; here the three nodes share one, as an NFS mount
    would make them, so the declared run writes every shard where the driver finds it."""
    folder = next(p for p in sorted(demo_data.iterdir()) if p.is_dir())
    inp, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(folder, inp / folder.name)
    base = [sys.executable, "-m", "facesieve.cli.main", "embed", str(inp), "--out", str(out),
            "--ray-address", cluster3.address, "--device", "cpu", "--shard-size", "2"]  # fmt: skip
    env = _driver_env(cluster3, s3.endpoint)
    refused = subprocess.run(
        base, env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_DEADLINE_S
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert f"local path(s) {inp}, {out} on a Ray cluster of 3 nodes" in refused.stderr
    assert "--set run.shared_paths=true" in refused.stderr
    assert not (out / "images").exists()
    shared = subprocess.run(
        [*base, "--set", "run.shared_paths=true"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_DEADLINE_S,
    )  # fmt: skip
    assert shared.returncode == 0, shared.stderr[-3000:]
    n_images = len([p for p in (inp / folder.name).iterdir() if p.is_file()])
    assert len(list((out / "images").glob("*.parquet"))) == (n_images + 1) // 2


def test_a_node_lost_mid_run_changes_nothing_in_the_outputs(
    cluster3: Any, s3: Any, demo_data: Path, tmp_path: Path
) -> None:
    client = s3_client(s3.endpoint)
    _upload_input(client, demo_data)
    env = _driver_env(cluster3, s3.endpoint)
    head = cluster3.head_node.node_id
    nodes = {head} | {n.node_id for n in cluster3.worker_nodes}
    assert len(nodes) == 3

    started = time.monotonic()
    clean = subprocess.run(
        _command(cluster3, s3, f"s3://{BUCKET}/clean"),
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=RUN_DEADLINE_S,
    )  # fmt: skip
    clean_s = time.monotonic() - started
    assert clean.returncode == 0, clean.stderr[-4000:]
    done = _markers(client, "clean/", "embed")
    total = len(done)
    assert total >= 12
    # work on every node: embed and index-fill units ran on each of the three
    for step in ("embed", "index-fill"):
        ran_on = {m["worker"]["node_id"] for m in _markers(client, "clean/", step)}
        assert ran_on == nodes, step

    started = time.monotonic()
    log = (tmp_path / "failed.log").open("w+")
    proc = subprocess.Popen(
        _command(cluster3, s3, f"s3://{BUCKET}/failed"),
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        before = _wait_for_work_on_every_node(client, "failed/", nodes, proc, total)
        time.sleep(0.5)  # the victim's worker has been handed its next unit by now
        victim = next(n for n in cluster3.worker_nodes if n.node_id != head)
        removed_at = time.time()
        cluster3.remove_node(victim)
        rc = proc.wait(timeout=RUN_DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    failed_s = time.monotonic() - started
    log.seek(0)
    output = log.read()
    assert rc == 0, output[-4000:]
    assert any(m["worker"]["node_id"] == victim.node_id for m in before)

    # the victim was running a unit when it went: that unit was redone on another node
    embed = _markers(client, "failed/", "embed")
    retried = [m for m in embed if m["attempts"] > 1]
    assert retried, "no unit was running on the removed node"
    assert all(m["worker"]["node_id"] != victim.node_id for m in retried)
    late = [m for m in embed if m["finished_at"] > removed_at + 0.1]
    assert late and all(m["worker"]["node_id"] != victim.node_id for m in late)
    assert "a worker died" in output

    # the outputs equal the clean run's, file by file
    a, b = _objects(client, "clean/"), _objects(client, "failed/")
    assert sorted(a) == sorted(b)
    for prefix in ("images/", "faces/", "index/", "clusters/", "report/actions.parquet"):
        assert any(k.startswith(prefix) for k in a), prefix
    na, nb = (
        {f"s3://{BUCKET}/{run}": "OUT", json.loads(d["report/summary.json"])["report_id"]: "ID"}
        for run, d in (("clean", a), ("failed", b))
    )
    assert _run_json(a.pop("run.json"), na) == _run_json(b.pop("run.json"), nb)
    differ = [k for k in sorted(a) if _comparable(k, a[k], na) != _comparable(k, b[k], nb)]
    assert not differ, differ
    print(
        f"3-node run: clean {clean_s:.1f} s, with a node removed {failed_s:.1f} s, "
        f"{total} embed units, {len(retried)} retried"
    )
