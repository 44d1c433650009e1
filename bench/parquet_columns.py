"""Reading a few columns of a faces Parquet file: the whole file's bytes, or only their chunks.

`python bench/parquet_columns.py [--faces N]` writes N synthetic faces (face_id, image_id, label,
512-d float32 embedding, zstd: the shape of OUT/faces) and prints the median of 5 reads of the
three string columns through `outputs.read_parquet`, from a LocalStore (random access) and from
the same bytes read whole (what an S3 store does), with the file size.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.outputs import parquet_bytes, read_parquet
from facesieve.storage import LocalStore

COLUMNS = ["face_id", "image_id", "label"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=int, default=20_000)
    n = ap.parse_args().faces
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, 512), dtype=np.float32)
    table = pa.table(
        {
            "face_id": [f"{i:016x}#0" for i in range(n)],
            "image_id": [f"{i:016x}" for i in range(n)],
            "label": [f"person_{i % 500}" for i in range(n)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 512),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(tmp)
        store.write_bytes("faces/s.parquet", parquet_bytes(table))
        size = (Path(tmp) / "faces" / "s.parquet").stat().st_size

        def whole() -> pa.Table:
            return pq.read_table(io.BytesIO(store.read_bytes("faces/s.parquet")), columns=COLUMNS)

        def chunks() -> pa.Table:
            return read_parquet(store, "faces/s.parquet", COLUMNS)

        result = {"faces": n, "file_mb": round(size / 1e6, 1)}
        for name, fn in (("whole_file_ms", whole), ("column_chunks_ms", chunks)):
            times = []
            for _ in range(5):
                t = time.perf_counter()
                assert fn().num_rows == n
                times.append(time.perf_counter() - t)
            result[name] = round(statistics.median(times) * 1000, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
