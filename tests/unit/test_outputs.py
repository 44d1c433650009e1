import numpy as np
import pyarrow as pa
import pytest

from facesieve.outputs import parquet_bytes, read_parquet
from facesieve.storage import LocalStore


class NoWholeReads(LocalStore):
    def read_bytes(self, key: str) -> bytes:
        raise AssertionError(f"{key} was read whole")


def _faces(n: int) -> pa.Table:
    emb = np.arange(n * 512, dtype=np.float32).reshape(-1)
    return pa.table(
        {
            "face_id": [f"f{i}" for i in range(n)],
            "label": [None if i % 3 else f"L{i}" for i in range(n)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb), 512),
        }
    )


@pytest.mark.parametrize("columns", [["face_id", "label"], None])
def test_a_local_store_reads_only_the_columns_asked_for(tmp_path, columns) -> None:
    table = _faces(50)
    LocalStore(tmp_path).write_bytes("faces/a.parquet", parquet_bytes(table))
    got = read_parquet(NoWholeReads(tmp_path), "faces/a.parquet", columns)
    assert got.equals(table.select(columns) if columns else table)


def test_a_store_without_random_access_reads_the_bytes(tmp_path) -> None:
    class Streamed(LocalStore):
        random_access = False

    table = _faces(5)
    LocalStore(tmp_path).write_bytes("faces/a.parquet", parquet_bytes(table))
    assert read_parquet(Streamed(tmp_path), "faces/a.parquet", ["label"]).equals(
        table.select(["label"])
    )
