"""Reading an output root back: per-shard Parquet folders, and row positions between tables.

The global steps (cluster, clean) read whole folders of ``OUT/images`` or ``OUT/faces``; this is
the one place that does it, in shard-id order so every reader sees the same row order. Writing
Parquet for an atomic put is here too, for every step.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from facesieve.storage.base import Store


def images_key(shard_id: str) -> str:
    return f"images/{shard_id}.parquet"


def faces_key(shard_id: str) -> str:
    return f"faces/{shard_id}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as Parquet bytes (zstd), ready for one atomic ``Store.write_bytes``."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def read_parquet(out: Store, key: str, columns: list[str] | None = None) -> pa.Table:
    """``columns`` of one Parquet file. From a store with random access only their column
    chunks are read: a faces file is almost all embeddings, so reading its labels took 35 ms and
    the whole file's bytes in memory, against 3.5 ms this way (20,000 faces, 38.6 MB,
    bench/parquet_columns.py)."""
    if getattr(out, "random_access", False):
        with out.open_read(key) as f:
            return pq.read_table(f, columns=columns)
    return pq.read_table(io.BytesIO(out.read_bytes(key)), columns=columns)


READ_THREADS = 4  # Parquet decoding and file reads release the GIL: 1.4x on 2 cores


def read_parquets(
    out: Store, keys: list[str], columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """The tables of ``keys``, in that order, read a few at a time in threads (at most
    ``2 * READ_THREADS`` waiting in memory, whatever the number of keys)."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for start in range(0, len(keys), 2 * READ_THREADS):
            window = keys[start : start + 2 * READ_THREADS]
            yield from pool.map(lambda key: read_parquet(out, key, columns), window)


def folder_keys(out: Store, folder: str) -> list[str]:
    """The Parquet shards of ``OUT/<folder>``, sorted: the order ``read_folder`` reads them in."""
    return sorted(i.key for i in out.list(f"{folder}/") if i.key.endswith(".parquet"))


def read_folder(out: Store, folder: str, columns: list[str]) -> pa.Table | None:
    """All shards of ``OUT/<folder>`` concatenated; None when there is none. Only ``columns``
    are read: read the embeddings of a whole folder with ``clean.embeddings`` instead, which
    keeps them out of RAM (2 GB per million faces)."""
    tables = list(read_parquets(out, folder_keys(out, folder), columns))
    return pa.concat_tables(tables) if tables else None


def positions(
    values: pa.Array | pa.ChunkedArray, value_set: pa.Array | pa.ChunkedArray
) -> np.ndarray:
    """Row of each value in ``value_set`` (int64), -1 where it is absent."""
    if isinstance(value_set, pa.ChunkedArray):
        value_set = value_set.combine_chunks()
    found = pc.index_in(values, value_set=value_set)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
