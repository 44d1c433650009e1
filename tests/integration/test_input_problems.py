"""Anything wrong with one input entry becomes that entry's row and the job goes on: named pipes,
names that are not UTF-8, links leading out of the root, broken links, paths too long, folders
that cannot be listed, files that cannot be read. Roots that would be half read, missing inputs
and runs in which every unit failed end with a clear message and exit code."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from facesieve import schema
from tests.integration.nightly_helpers import facesieve

pytestmark = pytest.mark.integration

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _without_root_powers() -> list[str] | None:
    """A command prefix under which file permissions hold for this user (root included)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run([*NO_DAC, "true"], capture_output=True)
    return NO_DAC if probe.returncode == 0 else None


def _deep(root: Path) -> str:
    """Create a file whose path is longer than PATH_MAX (4096), one folder at a time."""
    fd = os.open(root, os.O_RDONLY)
    parts = []
    try:
        for _ in range(20):
            name = "d" * 250
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
            parts.append(name)
        out = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
        os.write(out, b"\xff\xd8\xff")
        os.close(out)
    finally:
        os.close(fd)
    return "/".join(parts)


def test_every_strange_entry_becomes_one_row_and_the_job_goes_on(
    demo_data: Path, tmp_path: Path
) -> None:
    prefix = _without_root_powers()
    if prefix is None:
        pytest.skip("cannot drop root's permission override here (no setpriv)")
    src = tmp_path / "in"
    shutil.copytree(demo_data / "players_02", src / "players_02")
    shutil.copytree(demo_data / "gdp_01", src / "locked")
    (tmp_path / "secret.jpg").write_bytes((demo_data / "gdp_01" / "0.jpg").read_bytes())
    os.mkfifo(src / "players_02" / "x.jpg")
    (src / "players_02" / "away.jpg").symlink_to(tmp_path / "secret.jpg")
    (src / "players_02" / "gone.jpg").symlink_to(src / "nowhere.jpg")
    with open(os.fsencode(str(src / "players_02")) + b"/caf\xe9.jpg", "wb") as f:
        f.write((demo_data / "players_02" / "0.jpg").read_bytes())
    unreadable = src / "players_02" / "unreadable.jpg"
    unreadable.write_bytes((demo_data / "players_02" / "1.jpg").read_bytes())
    unreadable.chmod(0)
    deep = "players_02/" + _deep(src / "players_02")
    (src / "locked").chmod(0)
    out = tmp_path / "out"
    out.mkdir()
    args = ["run", str(src), "--out", str(out), "--runner", "local", "--json", "-q"]
    try:
        done = subprocess.run(
            [*prefix, *facesieve_cmd(args)], capture_output=True, text=True, timeout=300
        )
    finally:
        (src / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["uri"][len(str(src)) + 1 :]: r for r in _rows(out)}
    expected = {
        "players_02/x.jpg": (schema.UNSUPPORTED, "named pipe"),
        "players_02/away.jpg": (schema.UNSUPPORTED, "outside the input root"),
        "players_02/gone.jpg": (schema.UNSUPPORTED, "broken symbolic link"),
        "players_02/caf\\xe9.jpg": (schema.UNSUPPORTED, "not valid UTF-8"),
        "players_02/unreadable.jpg": (schema.DECODE_ERROR, "Permission denied"),
        "locked": (schema.DECODE_ERROR, "cannot list this folder: Permission denied"),
    }
    for key, (status, reason) in expected.items():
        assert rows[key]["status"] == status and reason in rows[key]["error"], (key, rows[key])
    (too_long,) = [k for k in rows if k.startswith(deep[:260])]  # the folder beyond PATH_MAX
    assert rows[too_long]["status"] == schema.DECODE_ERROR
    assert "File name too long" in rows[too_long]["error"]
    copied = sorted(p.name for p in (demo_data / "players_02").iterdir())
    ok = [k for k, r in rows.items() if r["status"] == schema.OK]
    assert sorted(k.split("/")[1] for k in ok) == [n for n in copied if n.endswith(".jpg")]
    assert len(rows) == len(copied) + len(expected) + 1  # one row per entry, none twice
    actions = pq.read_table(out / "report" / "actions.parquet").to_pylist()
    assert len(actions) == len(rows)


def facesieve_cmd(args: list[str]) -> list[str]:
    import sys

    return [sys.executable, "-m", "facesieve.cli.main", *args]


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "images").to_pylist()


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_root_of_tars_and_loose_images_is_refused_or_read_whole(
    demo_data: Path, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    photo = (demo_data / "gdp_01" / "0.jpg").read_bytes()
    _tar(src / "a.tar", {"000.jpg": photo, "000.json": b'{"label": "x"}'})
    (src / "loose.jpg").write_bytes(photo)
    (src / "README.txt").write_text("a webdataset")
    base = ["run", str(src), "--runner", "local", "-q"]
    refused = facesieve([*base, "--out", str(tmp_path / "o1")])
    assert refused.returncode == 2 and "--layout webdataset" in refused.stderr
    done = facesieve([*base, "--out", str(tmp_path / "o2"), "--layout", "webdataset", "--json"])
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["uri"].rsplit("/", 1)[1]: r for r in _rows(tmp_path / "o2")}
    assert rows["a.tar#000.jpg"]["status"] == schema.OK
    for loose in ("loose.jpg", "README.txt"):
        assert rows[loose]["status"] == schema.UNSUPPORTED and "beside the tar" in rows[loose][
            "error"]  # fmt: skip


def test_a_missing_input_and_a_run_where_every_unit_failed(demo_data: Path, tmp_path: Path) -> None:
    missing = facesieve(["run", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "-q"])
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    config = tmp_path / "slow.yaml"
    config.write_text("run:\n  unit_timeout_s: 0.01\n  retries: 1\n  retry_backoff_s: 0.1\n")
    args = ["run", str(demo_data), "--out", str(tmp_path / "o"), "--runner", "local"]
    failed = facesieve([*args, "--config", str(config), "--shard-size", "40"])
    assert failed.returncode == 1
    lines = [line for line in failed.stdout.splitlines() if line.startswith("FAILED embed")]
    assert len(lines) == 3 and all("ran past" in line for line in lines)
    assert "STOPPED" in failed.stdout
    info = json.loads((tmp_path / "o" / "run.json").read_text())
    assert info["exit_code"] == 1 and len(info["failed"]) == 3
    assert info["failed"][0]["attempts"] == 2
