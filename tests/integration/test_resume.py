"""Kill a job part-way (SIGKILL, no cleanup) and rerun it: outputs equal an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facesieve.runner.pipeline import run_embed
from tests.integration.helpers import assert_same_outputs, local_config

pytestmark = pytest.mark.integration


def _embed_cmd(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "facesieve.cli.main", "embed", str(data), "--out", str(out),
            "--runner", "local", "--device", "cpu", "--shard-size", "8", "-q"]  # fmt: skip


def _finished(markers: Path) -> list[Path]:
    """Done-markers written whole: a writer killed mid-write leaves a ``.NAME.*.tmp`` file."""
    return list(markers.glob("*.json"))


def test_killed_run_resumes_to_the_same_outputs(demo_data: Path, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    run_embed(str(demo_data), str(reference), local_config().with_overrides("source", shard_size=8))
    total = len(list((reference / "_done" / "embed").iterdir()))
    assert total >= 10

    out = tmp_path / "killed"
    proc = subprocess.Popen(_embed_cmd(demo_data, out), start_new_session=True)
    markers = out / "_done" / "embed"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if markers.is_dir() and len(_finished(markers)) >= 3:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(_finished(markers))
    assert 3 <= done_at_kill < total, "the kill must land part-way through the job"
    assert not (out / "run.json").exists()

    resumed = subprocess.run(
        _embed_cmd(demo_data, out), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{done_at_kill} already done" in resumed.stdout
    assert_same_outputs(reference, out)
