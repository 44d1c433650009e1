"""bench/scale.py prints what issue 12 specifies, with a recall that checks out: on a set small
enough for exact search the kNN graph is exact, so every same-identity neighbour is found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_scale_bench_runs_the_global_stages_and_reports_them(tmp_path: Path) -> None:
    work = tmp_path / "scale"
    cmd = [sys.executable, "bench/scale.py", "--faces", "3000", "--json", "--work", str(work),
           "--runner", "local", "--queries", "200"]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT / "lib"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["faces"] == 3000
    assert set(result["stages"]) == {"index", "knn", "cluster", "clean"}
    assert all(seconds > 0 for seconds in result["stages"].values())
    assert 0.05 < result["peak_rss_gb"] < 20
    by_step = result["peak_gb_by_step"]
    assert {"index-train", "knn", "cluster", "clean"} <= set(by_step)
    assert max(by_step.values()) <= result["peak_rss_gb"]
    assert result["factory"] == "IDMap2,Flat"  # exact below index.flat_below
    assert result["knn_same_identity_recall"] == 1.0
    assert (work / "faces-3000" / "report" / "actions.parquet").exists()
    lines = (work / "results.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [result]
    pytest.importorskip("matplotlib")
    png = tmp_path / "scale.png"
    plotted = subprocess.run([*cmd[:2], "--plot", str(png), "--work", str(work)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert plotted.returncode == 0, plotted.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fewer_stages_run_and_report_only_those(tmp_path: Path) -> None:
    work = tmp_path / "scale"
    cmd = [sys.executable, "bench/scale.py", "--faces", "2000", "--json", "--work", str(work),
           "--runner", "local", "--queries", "50", "--stages", "index,cluster"]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT / "lib"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert set(result["stages"]) == {"index", "knn", "cluster"}
    assert "clean" not in result["peak_gb_by_step"]
    assert not (work / "faces-2000" / "report").exists()
    refused = subprocess.run([*cmd[:-1], "clean"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120, env=env)  # fmt: skip
    assert refused.returncode == 2 and "--stages" in refused.stderr
    graph = {p.name: p.stat().st_mtime_ns for p in (work / "faces-2000" / "index").rglob("*")}
    later = subprocess.run([*cmd[:-1], "clean", "--keep"], cwd=ROOT, capture_output=True,
                           text=True, timeout=600, env=env)  # fmt: skip
    assert later.returncode == 0, later.stderr[-3000:]
    second = json.loads(later.stdout)
    assert set(second["stages"]) == {"clean"}
    assert second["kept"] == ["index", "knn", "cluster"]
    assert second["knn_same_identity_recall"] is None
    assert (work / "faces-2000" / "report" / "actions.parquet").exists()
    index = work / "faces-2000" / "index"
    assert {p.name: p.stat().st_mtime_ns for p in index.rglob("*")} == graph  # not redone
    none_yet = subprocess.run([*cmd[:3], "1500", *cmd[4:-1], "clean", "--keep"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert none_yet.returncode != 0 and "no earlier run of 1500" in none_yet.stderr
