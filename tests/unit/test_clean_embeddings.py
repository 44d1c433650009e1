"""Clean's embeddings on local disk read back what was written, in face order."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facesieve.clean.embeddings import EmbeddingRows, read_embeddings
from facesieve.errors import StorageError
from facesieve.storage import LocalStore


def test_rows_come_back_for_every_kind_of_index() -> None:
    faces = np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32)
    rows = EmbeddingRows.of(faces)
    assert rows.shape == (12, 8) and len(rows) == 12
    mask = np.random.default_rng(1).random(12) < 0.5
    for idx in (3, -1, slice(2, 9), [4, 0, 4], np.array([11, 2]), mask):
        got = rows[idx]
        assert got.dtype == np.float32 and np.array_equal(got, faces[idx])
    assert rows[np.zeros(0, np.int64)].shape == (0, 8)
    got = rows[[1, 2]]
    got[:] = 0  # a copy: the file is unchanged
    assert np.array_equal(rows[[1, 2]], faces[[1, 2]])
    rows.close()
    assert EmbeddingRows(0, 8)[np.zeros(0, np.int64)].shape == (0, 8)


def test_shards_are_read_into_face_order(tmp_path: Path) -> None:
    out = LocalStore(str(tmp_path))
    rng = np.random.default_rng(2)
    shards = [rng.normal(size=(n, 512)).astype(np.float32) for n in (5, 0, 7)]
    for i, emb in enumerate(shards):
        buf = io.BytesIO()
        column = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 512)
        pq.write_table(pa.table({"embedding": column}), buf)
        out.write_bytes(f"faces/part-{i:05d}.parquet", buf.getvalue())
    read_order = np.concatenate(shards)
    order = rng.permutation(len(read_order))  # face row i is row order[i] of the shards
    rows = read_embeddings(out, "faces", order)
    assert np.array_equal(rows[:], read_order[order])


def test_no_room_on_local_disk_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(StorageError, match=r"needs 0\.0 GB of local disk .* set TMPDIR"):
        EmbeddingRows(10, 8)
