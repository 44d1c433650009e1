"""Reading the cleaning inputs: old output roots are refused with a clear error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
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


def test_graph_rows_map_to_face_rows_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from facesieve.clean import inputs
    from facesieve.cluster.graph import KnnGraph

    # graph over faces b, c, d (index order); the faces are a..d, face a is not in the graph
    graph = KnnGraph(
        face_ids=pa.array(["b", "c", "d"]),
        ids=np.array([10, 11, 12]),
        neighbors=np.array([[1, 2], [0, -1], [1, 0]], np.int32),
        sims=np.array([[0.9, 0.8], [0.9, np.nan], [0.7, 0.6]], np.float32),
    )
    monkeypatch.setattr(inputs, "GRAPH_BLOCK", 2)  # blocks of 2 graph rows: 2 blocks
    neighbors, sims = inputs._face_graph(graph, pa.array(["a", "b", "c", "d"]))
    assert neighbors.dtype == np.int32
    assert neighbors.tolist() == [[-1, -1], [2, 3], [1, -1], [2, 1]]
    assert np.isnan(sims[0]).all() and np.isnan(sims[2, 1])
    assert sims[3].tolist() == pytest.approx([0.7, 0.6])
