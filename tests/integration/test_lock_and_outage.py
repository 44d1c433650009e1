"""One run at a time per output root (local and S3), a lease left by a killed run, and a nightly
run that rides out an S3 outage of about a minute (SeaweedFS stopped mid-run, started again)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from facesieve.devtools.seaweed import SeaweedS3
from facesieve.errors import LockError
from facesieve.runner.lock import LOCK_KEY, Lease
from facesieve.storage import open_store
from tests.integration.conftest import IDENTITIES
from tests.integration.helpers import S3_ENV, s3_client
from tests.integration.nightly_helpers import facesieve, mirror, wait_for
from tests.integration.test_ray_runner import make_tars

pytestmark = pytest.mark.integration


def test_a_second_run_is_refused_and_a_killed_runs_lease_is_taken_over(
    demo_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["run", str(demo_data), "--out", str(out), "--runner", "local", "-q"]
    cmd = [sys.executable, "-m", "facesieve.cli.main", *args]
    first = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(out / LOCK_KEY)
        second = facesieve(args)
        assert second.returncode == 2
        assert "another facesieve run is writing to" in second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert (out / LOCK_KEY).exists()  # a killed run cannot clean up
    resumed = facesieve(args)  # same host, process gone: the lease is taken over at once
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "taking over the lock" in resumed.stderr or not resumed.stderr
    assert not (out / LOCK_KEY).exists()


def test_the_lease_on_s3(s3, creds: None) -> None:
    s3_client(s3.endpoint).create_bucket(Bucket="leases")
    out = open_store("s3://leases/run", s3.endpoint)
    with Lease(out, 60, "nightly"), pytest.raises(LockError, match="another facesieve run"):
        Lease(out, 60, "second").acquire()
    assert not out.exists(LOCK_KEY)
    stale = {"run_id": "old", "host": "elsewhere", "pid": 1, "command": "run",
             "started_at": 0, "expires_at": time.time() - 5}  # fmt: skip
    out.write_bytes(LOCK_KEY, json.dumps(stale).encode())
    with Lease(out, 60, "next") as lease:  # the lease of a run killed elsewhere has expired
        assert json.loads(out.read_bytes(LOCK_KEY))["run_id"] == lease.run_id
    out.write_bytes(LOCK_KEY, json.dumps({**stale, "expires_at": time.time() + 60}).encode())
    with pytest.raises(LockError, match="elsewhere"):
        Lease(out, 60, "next").acquire()


def _table(root: Path, folder: str, drop: str, key: str):
    return pq.read_table(root / folder).drop_columns([drop]).sort_by(key)


def test_a_nightly_run_rides_out_an_s3_outage(demo_data: Path, tmp_path: Path, creds: None) -> None:
    server = SeaweedS3(tmp_path / "weed", identities=IDENTITIES).start()
    try:
        client = s3_client(server.endpoint)
        client.create_bucket(Bucket="outage")
        for t in make_tars(demo_data, tmp_path / "tars", 8):
            client.upload_file(str(t), "outage", f"in/{t.name}")
        common = ["--runner", "local", "--s3-endpoint", server.endpoint, "--json", "-q"]
        reference = facesieve(["run", "s3://outage/in", "--out", str(tmp_path / "ref"), *common],
                              S3_ENV)  # fmt: skip
        assert reference.returncode == 0, reference.stderr[-2000:]

        cmd = [sys.executable, "-m", "facesieve.cli.main", "run", "s3://outage/in", "--out",
               "s3://outage/out", *common[:-1]]  # fmt: skip
        run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **S3_ENV})  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # stop the server once the first shard is done
            listed = client.list_objects_v2(Bucket="outage", Prefix="out/_done/embed/")
            if listed.get("KeyCount", 0) >= 1:
                break
            time.sleep(0.1)
        server.stop()
        down = time.monotonic()
        time.sleep(45)  # and a restart of about 15 s: an outage of about a minute
        server.start()
        outage = time.monotonic() - down
        stdout, stderr = run.communicate(timeout=400)
        assert run.returncode == 0, stderr[-3000:]
        assert outage > 55 and "retrying in" in stderr  # units failed while S3 was down
        assert json.loads(stdout)["exit_code"] == 0
        done = client.list_objects_v2(Bucket="outage", Prefix="out/_done/embed/")["Contents"]
        attempts = [
            json.loads(client.get_object(Bucket="outage", Key=o["Key"])["Body"].read())["attempts"]
            for o in done
        ]
        assert len(attempts) == 8 and max(attempts) >= 2
        got, ref = mirror("s3://outage/out", tmp_path / "mirror", server.endpoint), tmp_path / "ref"
        for folder, drop, key in (("images", "shard_id", "image_id"),
                                  ("faces", "index_id", "face_id")):  # fmt: skip
            assert _table(got, folder, drop, key).equals(_table(ref, folder, drop, key))
        actions = "report/actions.parquet"
        assert _table(got, actions, "cluster_id", "image_id").equals(
            _table(ref, actions, "cluster_id", "image_id")
        )
    finally:
        server.stop()
