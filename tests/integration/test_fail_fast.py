"""Runs that cannot get what they ask for end in seconds with exit 2 and a clear message: a Ray
address nothing answers at, and --device cuda where there is no GPU (a local Ray runtime, the
in-process runner). The joined-cluster case is in test_ray_job_submit.py (it needs a head)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def facesieve(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT / "lib")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "facesieve.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return done, time.monotonic() - started


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_an_unreachable_ray_address_exits_2_in_seconds(demo_data: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with block ends
    done, seconds = facesieve(
        "run", str(demo_data), "--out", str(tmp_path / "out"), "--ray-address", f"127.0.0.1:{port}"
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert seconds < 30
    print(f"unreachable --ray-address: exit 2 after {seconds:.1f} s")


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_on_a_local_ray_runtime_without_gpus_exits_2(
    demo_data: Path, tmp_path: Path
) -> None:
    done, seconds = facesieve(
        "run", str(demo_data), "--out", str(tmp_path / "out"), "--device", "cuda"
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "the local Ray runtime has no GPU and no autoscaler runs" in done.stderr
    assert seconds < 60
    print(f"--device cuda, local Ray runtime without GPUs: exit 2 after {seconds:.1f} s")


@pytest.mark.skipif(cuda_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_in_process_without_cuda_exits_2(demo_data: Path, tmp_path: Path) -> None:
    done, seconds = facesieve(
        "run", str(demo_data), "--out", str(tmp_path / "out"), "--device", "cuda",
        "--runner", "local",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert "--device cuda was asked for but torch sees no CUDA GPU" in done.stderr
    assert seconds < 30
