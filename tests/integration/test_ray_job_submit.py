"""`ray job submit -- python jobs/nightly.py` end to end on a Ray head of the test's own: bound to
127.0.0.1, free ports, its own temp dir, token auth on, stopped by its own process ids (a bare
`ray stop` would kill every Ray runtime on the machine, other sessions' too)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.integration
Completed = subprocess.CompletedProcess

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
START_DEADLINE_S = 90
JOB_DEADLINE_S = 420


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Head:
    """`ray start --head --block` in a process group of its own; every process it leaves is
    found by its temp dir and killed by pid."""

    def __init__(self, temp: Path, env: dict[str, str]) -> None:
        gcs, dash, agent, agent_grpc, client, node, obj, metrics, rtenv = free_ports(9)
        self.temp, self.env, self.dashboard = temp, env, f"http://127.0.0.1:{dash}"
        self.gcs = f"127.0.0.1:{gcs}"
        cmd = [RAY, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={gcs}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
               f"--dashboard-agent-listen-port={agent}",
               f"--dashboard-agent-grpc-port={agent_grpc}",
               f"--ray-client-server-port={client}", f"--node-manager-port={node}",
               f"--object-manager-port={obj}", f"--metrics-export-port={metrics}",
               f"--runtime-env-agent-port={rtenv}", "--num-cpus=2", "--num-gpus=0",
               f"--temp-dir={temp}", "--disable-usage-stats"]  # fmt: skip
        self.log = (temp / "head.log").open("wb")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, token: str) -> None:
        deadline = time.monotonic() + START_DEADLINE_S
        request = urllib.request.Request(
            f"{self.dashboard}/api/version", headers={"Authorization": f"Bearer {token}"}
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError(f"no Ray dashboard within {START_DEADLINE_S} s: {self.tail()}")

    def tail(self) -> str:
        return (self.temp / "head.log").read_text(errors="replace")[-3000:]

    def ours(self) -> list[int]:
        """Live processes started for this head: the ray start process group, and anything
        whose command line names this head's temp dir or GCS port (from /proc: Linux only)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            pid = int(entry.name)
            try:
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # killed already, waiting for its parent to reap it
                raw = (entry / "cmdline").read_bytes()
                line = raw.replace(b"\0", b" ").decode(errors="replace")
                mine = str(self.temp) in line or self.gcs in line
                if pid == self.proc.pid or mine or os.getpgid(pid) == self.proc.pid:
                    found.append(pid)
            except OSError:  # gone meanwhile
                continue
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # --block: ray start stops its own processes
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        for pid in self.ours():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        deadline = time.monotonic() + 15  # SIGKILL is asynchronous: wait until they are gone
        while self.ours() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.log.close()


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[Head, dict[str, str]]]:
    temp = Path(tempfile.mkdtemp(prefix="fsray-", dir="/tmp"))  # short: Ray's socket paths
    token = secrets.token_hex(32)
    (temp / "token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(temp / "token"),
        "PYTHONPATH": str(ROOT / "lib"),  # the job imports this tree's facesieve (the image's)
        "HOME": str(temp),  # no ~/.ray/auth_token of this machine's user gets in the way
    }
    head = Head(temp, env)
    try:
        head.wait_ready(token)
        yield head, env
    finally:
        head.stop()
        left = head.ours()
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, [(pid, Path(f"/proc/{pid}/cmdline").read_bytes()[:200]) for pid in left]


def small_dataset(shared: Path, dest: Path) -> tuple[list[Path], Path]:
    """12 real portraits of 5 people, plus one truncated JPEG that must still get its row."""
    shutil.copytree(shared / "labeled" / "face_recognition_knn", dest)
    broken = dest / "biden" / "truncated.jpg"
    broken.write_bytes(next((dest / "biden").glob("*.jpg")).read_bytes()[:300])
    return sorted(p for p in dest.rglob("*") if p.is_file()), broken


def submit(
    head: Head, env: dict[str, str], *args: str, timeout: float
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAY, "job", "submit", "--address", head.dashboard, *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_nightly_job_runs_through_ray_job_submit(
    ray_head: tuple[Head, dict[str, str]], shared_faces: Path, tmp_path: Path
) -> None:
    head, env = ray_head
    files, broken = small_dataset(shared_faces, tmp_path / "in")
    out = tmp_path / "out"
    # a client without the token is turned away before anything runs
    wrong = env | {"RAY_AUTH_TOKEN": "not-the-token", "RAY_AUTH_TOKEN_PATH": ""}
    denied = submit(head, wrong, "--", "python", "-c", "print(1)", timeout=120)
    assert denied.returncode != 0 and not out.exists()
    assert "not-the-token" not in denied.stdout + denied.stderr

    job_id = f"facesieve-test-{secrets.token_hex(4)}"
    started = time.monotonic()
    done = submit(
        head, env, "--submission-id", job_id, "--working-dir", str(ROOT), "--",
        "python", "jobs/nightly.py", str(tmp_path / "in"), "--out", str(out),
        timeout=JOB_DEADLINE_S,
    )  # fmt: skip
    seconds = time.monotonic() - started
    status = subprocess.run(
        [RAY, "job", "status", "--address", head.dashboard, job_id],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    log = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, log
    assert f"Job '{job_id}' succeeded" in status.stdout, status.stdout + status.stderr
    # the job joined this head (RAY_ADDRESS from the job server), not a runtime of its own:
    # the head knows the job's worker actors
    actors = subprocess.run(
        [RAY, "list", "actors", "--address", head.dashboard, "--format", "json", "--limit", "500"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "UnitWorker" in actors.stdout, actors.stdout[-2000:] + actors.stderr[-2000:]
    actions = pq.read_table(out / "report" / "actions.parquet").to_pylist()
    assert sorted(a["uri"] for a in actions) == sorted(str(p) for p in files)
    assert {a["uri"]: a["action"] for a in actions}[str(broken)] in ("drop", "review")
    assert (out / "report" / "index.html").stat().st_size > 1000
    assert (out / "run.json").exists()
    print(f"ray job submit of the nightly job: {seconds:.1f} s")


def test_device_cuda_on_a_joined_cluster_without_gpus_exits_2_at_once(
    ray_head: tuple[Head, dict[str, str]], demo_data: Path, tmp_path: Path
) -> None:
    """The head has no GPU and no autoscaler (a read-only monitor): waiting would be forever."""
    head, env = ray_head
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "facesieve.cli.main", "run", str(demo_data), "--out",
         str(tmp_path / "out"), "--ray-address", head.gcs, "--device", "cuda"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"the Ray cluster at {head.gcs} has no GPU and no autoscaler runs" in done.stderr
    assert seconds < 60
    print(f"--device cuda on a joined cluster without GPUs: exit 2 after {seconds:.1f} s")


def test_a_job_that_exits_2_is_failed(
    ray_head: tuple[Head, dict[str, str]], tmp_path: Path
) -> None:
    """facesieve's exit code reaches Ray: a RayJob (backoffLimit) and a waiting submitter see it."""
    head, env = ray_head
    job_id = f"facesieve-bad-{secrets.token_hex(4)}"
    done = submit(
        head, env, "--submission-id", job_id, "--working-dir", str(ROOT), "--",
        "python", "jobs/nightly.py", str(tmp_path / "missing"), "--out", str(tmp_path / "out"),
        timeout=180,
    )  # fmt: skip
    status = subprocess.run(
        [RAY, "job", "status", "--address", head.dashboard, job_id],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"Job '{job_id}' failed" in status.stdout, status.stdout + status.stderr
    assert "exit code 2" in status.stdout, status.stdout
