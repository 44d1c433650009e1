"""The executor's loop with a small in-memory step (a stand-in for one function under test):
skip by digest, stale outputs removed, retries with backoff by kind of error, deadlines,
progress lines when stderr is not a terminal."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from facesieve.config import RunConfig
from facesieve.errors import ConfigError, StorageError
from facesieve.runner.executor import run_step
from facesieve.runner.progress import Progress
from facesieve.storage import LocalStore
from facesieve.work import Marker, Resources, Unit, UnitOutput
from facesieve.work.retry import Backoff, classify


class Counting:
    """Writes ``parts/<unit>.txt``; fails the first ``fail[unit]`` attempts with ``error``."""

    name = "count"
    item_name = "items"
    owned_prefixes = ("parts/",)
    resources = Resources()

    def __init__(self, out: LocalStore, units: dict[str, str], fail=None, error=None, sleep=0.0):
        self.out, self.units = out, units
        self.fail, self.error, self.sleep = dict(fail or {}), error, sleep
        self.calls: list[str] = []
        self.setups = 0

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        return [Unit(uid, d, f"unit {uid}", 2, uid) for uid, d in sorted(self.units.items())]

    def setup(self, device: str, threads: int) -> None:
        self.setups += 1

    def process(self, unit: Unit, progress) -> UnitOutput:
        self.calls.append(unit.unit_id)
        if self.fail.get(unit.unit_id, 0) > 0:
            self.fail[unit.unit_id] -= 1
            raise self.error
        for _ in range(2):
            time.sleep(self.sleep)
            progress(1)
        key = f"parts/{unit.unit_id}.txt"
        self.out.write_bytes(key, unit.digest.encode())
        return UnitOutput({"items": 2, "nested": {"n": 1}}, [key], {"seen": unit.digest})


def _run(**kw: object) -> RunConfig:
    cfg = RunConfig(**{"runner": "local", "retries": 2, "retry_backoff_s": 0.01, **kw})
    cfg.validate()
    return cfg


def test_units_run_once_then_skip_until_their_digest_changes(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    step = Counting(out, {"a": "1", "b": "1"})
    first = run_step(step, out, _run(), show_progress=False)
    assert (first.processed, first.skipped, first.units) == (2, 0, 2)
    assert first.totals == {"items": 4, "nested": {"n": 2}} and first.items == 4
    marker = first.markers["a"]
    assert marker.outputs == ["parts/a.txt"] and marker.meta == {"seen": "1"}
    again = run_step(Counting(out, {"a": "1", "b": "2"}), out, _run(), show_progress=False)
    assert (again.processed, again.skipped) == (1, 1) and again.totals["items"] == 4
    assert (tmp_path / "parts" / "b.txt").read_text() == "2"


def test_units_that_left_the_plan_lose_their_outputs_and_debris_is_swept(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    run_step(Counting(out, {"a": "1", "b": "1"}), out, _run(), show_progress=False)
    out.write_bytes("parts/zz.txt", b"debris of a crashed run")
    result = run_step(Counting(out, {"a": "1"}), out, _run(), show_progress=False)
    assert result.removed == 1 and result.skipped == 1
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["a.txt"]
    assert not (tmp_path / "_done" / "count" / "b.json").exists()


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    step = Counting(out, {"a": "1", "b": "1"}, fail={"a": 2}, error=OSError("reset"))
    started = time.monotonic()
    result = run_step(step, out, _run(retry_backoff_s=0.2), show_progress=False)
    assert result.ok and result.markers["a"].attempts == 3
    assert step.calls.count("a") == 3 and step.setups == 1
    assert time.monotonic() - started >= 0.2 + 0.4  # waited 0.2 s, then 0.4 s


def test_retries_run_out_and_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    flaky = Counting(out, {"a": "1", "b": "1"}, fail={"a": 9}, error=OSError("down"))
    result = run_step(flaky, out, _run(), show_progress=False)
    (failure,) = result.failed
    assert failure.unit_id == "a" and failure.attempts == 3 and failure.kind == "transient"
    assert "OSError: down" in failure.error and result.processed == 1
    denied = StorageError("cannot write: AccessDenied", transient=False)
    step = Counting(LocalStore(tmp_path / "x"), {"a": "1"}, fail={"a": 9}, error=denied)
    result = run_step(step, step.out, _run(), show_progress=False)
    assert step.calls == ["a"] and result.failed[0].kind == "permanent"


def test_fatal_errors_stop_the_step(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    step = Counting(out, {"a": "1", "b": "1"}, fail={"a": 1}, error=ConfigError("bad model"))
    with pytest.raises(ConfigError, match="bad model"):
        run_step(step, out, _run(), show_progress=False)
    assert step.calls == ["a"]


def test_a_unit_past_its_deadline_is_retried_then_reported(tmp_path: Path) -> None:
    out = LocalStore(tmp_path)
    step = Counting(out, {"a": "1"}, sleep=0.2)
    result = run_step(step, out, _run(unit_timeout_s=0.1, retries=1), show_progress=False)
    (failure,) = result.failed
    assert "DeadlineError" in failure.error and failure.attempts == 2


def test_progress_is_logged_when_stderr_is_not_a_terminal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = LocalStore(tmp_path)
    step = Counting(out, {str(i): "1" for i in range(4)}, sleep=0.05)
    with caplog.at_level(logging.INFO, logger="facesieve.progress"):
        run_step(step, out, _run(progress_interval_s=0.05), show_progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "facesieve.progress"]
    assert lines[0] == "count: 4 units to run (8 items)"
    assert any("ETA" in line and "items/s" in line for line in lines[1:-1])
    assert lines[-1].startswith("count: 4/4 units, 8/8 items")


def test_progress_line_and_error_kinds() -> None:
    p = Progress("embed", 10, 1000, "images", interval_s=60, terminal=False)
    p.started -= 10
    p.add_items(250)
    p.unit_done()
    assert p.line().startswith("embed: 1/10 units, 250/1,000 images, 25.0 images/s, ETA 30s")
    p.close()
    assert classify(ConfigError("x")) == "fatal"
    assert classify(StorageError("x", transient=True)) == "transient"
    assert classify(StorageError("x")) == "permanent"
    assert classify(RuntimeError("x")) == "transient"
    delays = [Backoff(5.0, 60.0, jitter=0).delay(a) for a in range(1, 6)]
    assert delays == [5, 10, 20, 40, 60] and sum(delays[:4]) > 60  # rides out a minute
