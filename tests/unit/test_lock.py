"""The output root's lease on a local folder (tests/integration/test_nightly.py runs it on S3)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facesieve.errors import LockError
from facesieve.runner.lock import LOCK_KEY, Lease
from facesieve.storage import LocalStore


def test_a_second_run_is_refused_while_the_first_holds_the_lease(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    with Lease(out, 60, "run A"):
        holder = json.loads((tmp_path / LOCK_KEY).read_text())
        assert holder["command"] == "run A" and holder["expires_at"] > time.time() + 50
        with pytest.raises(LockError, match=r"another facesieve run .* run A"):
            Lease(out, 60, "run B").acquire()
    assert not (tmp_path / LOCK_KEY).exists()
    with Lease(out, 60, "run B"):  # free again
        pass


def test_a_lease_left_by_a_dead_process_or_past_its_time_is_taken_over(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    import socket

    body = {"run_id": "old", "host": socket.gethostname(), "pid": int(dead.stdout),
            "command": "killed", "started_at": 0, "expires_at": time.time() + 3600}  # fmt: skip
    out.write_bytes(LOCK_KEY, json.dumps(body).encode())
    with Lease(out, 60, "next") as lease:
        assert json.loads((tmp_path / LOCK_KEY).read_text())["run_id"] == lease.run_id
    body.update(host="another-host", pid=1, expires_at=time.time() - 1)  # expired elsewhere
    out.write_bytes(LOCK_KEY, json.dumps(body).encode())
    with Lease(out, 60, "next"):
        pass
    body.update(expires_at=time.time() + 3600)  # alive elsewhere: refused
    out.write_bytes(LOCK_KEY, json.dumps(body).encode())
    with pytest.raises(LockError, match="another-host"):
        Lease(out, 60, "next").acquire()


def test_a_run_whose_lease_was_taken_stops(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    lease = Lease(out, 0.3, "slow").acquire()
    out.write_bytes(LOCK_KEY, b'{"run_id": "thief"}')  # another run took it over
    time.sleep(0.5)  # a renewal attempt finds the lock changed
    with pytest.raises(LockError, match="lost its lock"):
        lease.check()
    lease.release()
    assert json.loads((tmp_path / LOCK_KEY).read_text())["run_id"] == "thief"  # not ours to drop
