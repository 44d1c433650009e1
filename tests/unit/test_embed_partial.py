"""A shard whose unit stopped between its two writes (images file written, faces file not, or
an older one beside it) is embedded again, not failed: the retry after a lost node read the
missing faces file and failed with NoSuchKey (tests/integration/test_multinode.py found it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from facesieve import schema
from facesieve.config import Config
from facesieve.faces.stage import FINGERPRINT_KEY, EmbedStep
from facesieve.outputs import faces_key, images_key, parquet_bytes
from facesieve.storage import open_store

SHARD, PRINT = "s0", "fp-1"


def _image(image_id: str, n_faces: int) -> dict:
    return {"image_id": image_id, "shard_id": SHARD, "uri": f"/in/{image_id}.jpg", "label": "a",
            "width": 100, "height": 100, "bytes": 10, "sha256": "x" * 64, "status": schema.OK,
            "error": None, "n_faces": n_faces, "photo_desc": None, "source_tag": None}  # fmt: skip


def _face(image_id: str, k: int) -> dict:
    return {"face_id": schema.face_id(image_id, k), "image_id": image_id, "label": "a",
            "face_index": k, "bbox": np.zeros(4, np.float32),
            "landmarks": np.zeros(10, np.float32), "det_score": 0.9, "face_px": 50.0,
            "sharpness": 20.0, "yaw": 0.0, "embedding": np.ones(512, np.float32) / 512**0.5,
            "model": "m", "index_id": k}  # fmt: skip


def _step(tmp_path: Path) -> EmbedStep:
    out = open_store(str(tmp_path / "out"))
    images = pa.Table.from_pylist([_image("i1", 2), _image("i2", 1)], schema=schema.IMAGES)
    images = images.replace_schema_metadata({FINGERPRINT_KEY: PRINT})
    out.write_bytes(images_key(SHARD), parquet_bytes(images))
    return EmbedStep(Config(), open_store(str(tmp_path / "in")), out, None, PRINT)  # type: ignore[arg-type]


def test_an_images_file_without_its_faces_file_means_nothing_is_reused(tmp_path: Path) -> None:
    step = _step(tmp_path)
    previous = step._previous(SHARD)
    assert previous.images == {} and previous.faces == {}


def test_only_images_with_all_their_faces_are_reused(tmp_path: Path) -> None:
    step = _step(tmp_path)
    # an older faces file: i1 has one of its two faces, i2 its one
    faces = pa.Table.from_pylist([_face("i1", 0), _face("i2", 0)], schema=schema.FACES)
    step.out.write_bytes(faces_key(SHARD), parquet_bytes(faces))
    previous = step._previous(SHARD)
    assert sorted(previous.images) == ["i2"]
