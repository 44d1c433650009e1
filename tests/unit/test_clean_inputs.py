"""Reading the cleaning inputs: old output roots are refused with a clear error."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from facesieve.clean.inputs import _descriptors, load_inputs
from facesieve.errors import ConfigError
from facesieve.storage import LocalStore


def test_images_without_photo_descriptors_ask_for_a_new_embed(tmp_path: Path) -> None:
    out = LocalStore(str(tmp_path))
    old = pa.table({"image_id": ["a"], "uri": ["x.jpg"], "status": ["ok"]})
    buf = io.BytesIO()
    pq.write_table(old, buf)
    out.write_bytes("images/s.parquet", buf.getvalue())
    with pytest.raises(ConfigError, match="older facesieve"):
        load_inputs(out, [])


def test_descriptors_keep_their_rows_and_nulls_are_zero() -> None:
    col = pa.chunked_array([pa.array([b"\x01" * 128, None], pa.binary(128)),
                            pa.array([b"\x02" * 128], pa.binary(128))])  # fmt: skip
    d = _descriptors(col)
    assert d.shape == (3, 128) and d.dtype.name == "uint8"
    assert (d[0] == 1).all() and (d[1] == 0).all() and (d[2] == 2).all()
