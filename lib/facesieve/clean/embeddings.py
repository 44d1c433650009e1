"""Every face's embedding for the cleaning rules, kept on local disk and read by face rows.

The rules read embeddings a block of face rows at a time (a chunk of subjects, one image's
faces, a candidate pair), never all at once, while holding them all in RAM cost 2 GB per
million faces as float32 (20 GB at 10M, more than the rest of clean together). So they go, shard
by shard, into an unnamed temporary file (``TMPDIR``; 2 KB per face of local disk, gone when
the process ends, however it ends) in face-row order, and each read or write maps the file only
while it copies rows: the pages live in the kernel's page cache, which it may drop under
pressure, and count in no process's memory once the call returns. Face order matters: the rules
read ascending rows, so a block of rows is one stretch of the file and maps only that stretch
(in shard order the same block touched pages all over the file, and the kernel mapped nearly
all of it). The values are the stored float32 ones: the rules decide as they did from RAM.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from facesieve.errors import StorageError
from facesieve.outputs import folder_keys, read_parquets
from facesieve.schema import EMBEDDING_DIM
from facesieve.storage.base import Store


class EmbeddingRows:
    """(F, dim) float32 embeddings by face row. ``rows[idx]`` takes any numpy index of face rows
    (an int, a slice, an int array or a boolean mask) and returns a copy in RAM."""

    def __init__(self, n: int, dim: int = EMBEDDING_DIM) -> None:
        self.shape = (n, dim)
        # closed by close(), or when collected: the rows outlive any one with-block
        self._file = tempfile.TemporaryFile(prefix="facesieve-embeddings-")  # noqa: SIM115
        size = n * dim * 4
        if size:  # reserved now: a full disk under a mapping would kill the process (SIGBUS)
            try:
                os.posix_fallocate(self._file.fileno(), 0, size)
            except OSError as exc:
                self._file.close()
                raise StorageError(
                    f"clean needs {size / 2**30:.1f} GB of local disk under "
                    f"{tempfile.gettempdir()} for {n} embeddings ({exc.strerror}): set TMPDIR "
                    "to a disk with room"
                ) from exc

    @classmethod
    def of(cls, emb: np.ndarray) -> EmbeddingRows:
        """The rows of an in-memory (F, dim) array (tests, small inputs)."""
        rows = cls(*emb.shape)
        rows.put(np.arange(len(emb)), emb)
        return rows

    def put(self, face_rows: np.ndarray, chunk: np.ndarray) -> None:
        """Write ``chunk[i]`` as face row ``face_rows[i]``."""
        if len(face_rows):
            self._on_file(mmap.ACCESS_WRITE, lambda table: table.__setitem__(face_rows, chunk))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        if self.shape[0] == 0:
            return np.zeros((0, self.shape[1]), np.float32)[idx]
        # a copy, whether idx is basic or fancy indexing
        return self._on_file(mmap.ACCESS_READ, lambda table: np.array(table[idx]))

    def _on_file(self, access: int, use: Callable[[np.ndarray], Any]) -> Any:
        """``use(table)`` with the file mapped as an (F, dim) array, unmapped on return (the
        array must not outlive the call: the mapping cannot close while it is exported)."""
        with mmap.mmap(self._file.fileno(), 0, access=access) as mapped:
            return use(np.frombuffer(mapped, np.float32).reshape(self.shape))

    def close(self) -> None:
        self._file.close()


def read_embeddings(out: Store, folder: str, order: np.ndarray) -> EmbeddingRows:
    """The ``embedding`` column of every shard of ``OUT/<folder>``, a shard at a time, as face
    rows: face row ``i`` is row ``order[i]`` of the folder's shards concatenated (the order of
    ``outputs.read_folder``)."""
    rows = EmbeddingRows(len(order))
    where = np.empty(len(order), np.int64)
    where[order] = np.arange(len(order))  # face row of every row read
    start = 0
    for table in read_parquets(out, folder_keys(out, folder), ["embedding"]):
        flat = table.column("embedding").combine_chunks().flatten().to_numpy()
        chunk = flat.reshape(-1, EMBEDDING_DIM)
        rows.put(where[start : start + len(chunk)], chunk)
        start += len(chunk)
    if start != len(order):
        raise ValueError(f"{folder}/ changed while read: {start} embeddings, not {len(order)}")
    return rows
