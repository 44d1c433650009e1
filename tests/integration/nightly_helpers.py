"""Helpers for the nightly tests: edits of an input tree, CLI runs that may be killed, and the
comparison of an output root with a fresh run on the same input."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from facesieve.storage import open_store


def _images(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*.jpg") if p.is_file())


def _variant(src: Path, rng: random.Random) -> bytes:
    """Another photo of the same face: rotated, cropped a little and re-encoded."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    d = rng.randint(1, max(2, min(w, h) // 20))
    img = img.rotate(rng.uniform(-8, 8)).crop((d, d, w - d, h - d))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(75, 95))
    return buf.getvalue()


def add_folder(data: Path, rng: random.Random, name: str) -> str:
    """A new identity folder (``name`` picks where it sorts) of variants of one person."""
    source = rng.choice([p for p in data.iterdir() if p.is_dir() and len(_images(p)) >= 3])
    dest = data / name
    dest.mkdir()
    for i, img in enumerate(rng.sample(_images(source), 3)):
        (dest / f"n{i}.jpg").write_bytes(_variant(img, rng))
    return f"add {name}/ from {source.name}"


def delete_files(data: Path, rng: random.Random) -> str:
    gone = rng.sample(_images(data), rng.randint(1, 3))
    for p in gone:
        p.unlink()
    return "delete " + ", ".join(p.relative_to(data).as_posix() for p in gone)


def modify_file(data: Path, rng: random.Random) -> str:
    target = rng.choice(_images(data))
    target.write_bytes(_variant(target, rng))
    return f"modify {target.relative_to(data).as_posix()}"


def rename_file(data: Path, rng: random.Random) -> str:
    src = rng.choice(_images(data))
    folder = rng.choice([p for p in data.iterdir() if p.is_dir()])
    dest = folder / f"renamed_{rng.randint(0, 10**6)}.jpg"
    src.rename(dest)
    return f"rename {src.relative_to(data).as_posix()} -> {dest.relative_to(data).as_posix()}"


def remove_identity(data: Path, rng: random.Random) -> str:
    folder = rng.choice([p for p in data.iterdir() if p.is_dir()])
    shutil.rmtree(folder)
    return f"remove {folder.name}/"


EDITS = {
    "add first": lambda d, r: add_folder(d, r, f"000_new{r.randint(0, 999)}"),
    "add middle": lambda d, r: add_folder(d, r, f"m_new{r.randint(0, 999)}"),
    "add last": lambda d, r: add_folder(d, r, f"zzz_new{r.randint(0, 999)}"),
    "delete": delete_files,
    "modify": modify_file,
    "rename": rename_file,
    "remove identity": remove_identity,
}


def facesieve(args: list[str], env: dict[str, str] | None = None, kill_after: float | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess[str] | None:  # fmt: skip
    """Run the CLI in a new process; with ``kill_after``, SIGKILL it then (None if it was
    killed before it finished, like a node lost in the middle of a nightly run)."""
    cmd = [sys.executable, "-m", "facesieve.cli.main", *args]
    full_env = {**os.environ, **(env or {})}
    if kill_after is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=full_env)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=kill_after)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None


def mirror(out: str, dest: Path, endpoint: str | None = None) -> Path:
    """A local copy of an output root (S3 or local), to read with pyarrow."""
    if not out.startswith("s3://"):
        return Path(out)
    store = open_store(out, endpoint)
    for info in store.list():
        path = dest / info.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(store.read_bytes(info.key))
    return dest


def _table(root: Path, folder: str, key: str, drop: list[str]) -> pa.Table:
    parts = [pq.read_table(p) for p in sorted((root / folder).glob("*.parquet"))]
    return pa.concat_tables(parts).drop_columns(drop).sort_by(key)


def _partition(root: Path) -> set[frozenset[str]]:
    table = pq.read_table(root / "clusters" / "faces.parquet").to_pylist()
    groups: dict[int, set[str]] = defaultdict(set)
    for r in table:
        if r["cluster_id"] >= 0:
            groups[r["cluster_id"]].add(r["face_id"])
    return {frozenset(g) for g in groups.values()}


def assert_equals_fresh(nightly: Path, fresh: Path, data: Path) -> None:
    """``nightly`` holds what a fresh run on ``data`` wrote into ``fresh``: one image row per
    file and no other, the same faces and embeddings, actions and cluster partition, and no
    file that belongs to no shard or unit of today."""
    images = _table(nightly, "images", "image_id", ["shard_id"])
    assert images.equals(_table(fresh, "images", "image_id", ["shard_id"]))
    uris = images.column("uri").to_pylist()
    files = {str(p) for p in data.rglob("*") if p.is_file() or p.is_symlink()}
    assert sorted(uris) == sorted(files) and len(set(uris)) == len(uris)
    faces = _table(nightly, "faces", "face_id", ["index_id"])
    other = _table(fresh, "faces", "face_id", ["index_id"])
    assert faces.drop_columns(["embedding"]).equals(other.drop_columns(["embedding"]))
    a = np.stack(faces.column("embedding").to_numpy(zero_copy_only=False))
    b = np.stack(other.column("embedding").to_numpy(zero_copy_only=False))
    assert np.array_equal(a, b)  # onnxruntime gives the same bits whatever the batch
    actions = pq.read_table(nightly / "report" / "actions.parquet")
    fresh_actions = pq.read_table(fresh / "report" / "actions.parquet")
    drop = ["cluster_id"]  # ids carry history; the partition is compared below
    assert (
        actions.drop_columns(drop)
        .sort_by("image_id")
        .equals(fresh_actions.drop_columns(drop).sort_by("image_id"))
    )
    assert _partition(nightly) == _partition(fresh)
    # nothing stale: every per-shard file belongs to a shard of today's ledger
    ledger = pq.read_table(nightly / "ledger" / "files.parquet")
    shards = set(ledger.column("shard_id").to_pylist())
    (generation,) = (nightly / "index").glob("gen-*")  # older generations are gone
    for folder in ("images", "faces", "index/knn", "_done/embed", "_done/knn"):
        assert {p.name.split(".")[0] for p in (nightly / folder).iterdir()} <= shards, folder
    assert {p.name.split(".")[0] for p in (generation / "shards").iterdir()} <= shards
    assert not (nightly / "_lock.json").exists()


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)
