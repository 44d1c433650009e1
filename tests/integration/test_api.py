"""The Python API on real models and a real pipeline run (docs/API.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import facesieve
from facesieve.errors import ConfigError, FacesieveError
from facesieve.faces.engine import FaceEngine
from facesieve.faces.model_pack import bundled_photo
from tests.conftest import jpeg_bytes, photo_pixels
from tests.integration.helpers import local_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedder() -> facesieve.Embedder:
    return facesieve.Embedder(device="cpu")


def test_embed_paths_bytes_and_arrays_one_row_each(embedder, tmp_path: Path):
    players = photo_pixels("players.jpg")
    grey = np.asarray(players.mean(axis=2), np.uint8)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    blank = np.full((200, 200, 3), 127, np.uint8)
    images = [
        str(bundled_photo("gdp.jpg")),
        jpeg_bytes(players),
        players,
        grey,
        str(broken),
        str(tmp_path / "missing.jpg"),
        blank,
        np.zeros((10, 10, 4), np.uint8),
        players.astype(np.float32),
    ]
    found = embedder.embed(images)
    rows = found.images.to_pylist()
    assert [r["index"] for r in rows] == list(range(len(images)))
    assert [r["status"] for r in rows] == [
        "ok", "ok", "ok", "ok", "decode_error", "decode_error", "no_face", "decode_error",
        "decode_error",
    ]  # fmt: skip
    assert "cannot read" in rows[5]["error"]
    assert "shape" in rows[7]["error"] and "float32" in rows[8]["error"]
    assert rows[0]["name"].endswith("gdp.jpg") and rows[1]["name"] == "<bytes 1>"

    # the faces agree with the engine the batch job uses, face by face
    engine = FaceEngine(local_config().faces, "cpu")
    expected = engine.analyze([players])[0]
    faces = found.faces
    assert faces.num_rows == sum(r["n_faces"] for r in rows)
    vectors = facesieve.embeddings(faces)
    assert vectors.shape == (faces.num_rows, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    index = np.asarray(faces.column("index"))
    from_array = vectors[index == 2]
    assert len(from_array) == len(expected) == rows[2]["n_faces"] > 3
    assert np.allclose(from_array, np.stack([f.embedding for f in expected]), atol=1e-5)
    # a grey copy still finds the same people: each grey face has a colour twin
    twins = (vectors[index == 3] @ from_array.T).max(axis=1)
    assert len(twins) > 3 and twins.min() > 0.6 and np.median(twins) > 0.9


def test_embed_rejects_what_is_not_an_image(embedder):
    with pytest.raises(TypeError, match="image 1: expected a path, bytes or a numpy array"):
        embedder.embed([photo_pixels("gdp.jpg"), 42])


def test_run_and_open_outputs(demo_data: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = facesieve.run(str(demo_data), str(out), local_config())
    assert result.exit_code == 0
    outputs = facesieve.open_run(str(out))
    images = outputs.images()
    files = [p for p in demo_data.rglob("*") if p.is_file()]
    assert images.num_rows == len(files)
    faces = outputs.faces(columns=["face_id", "image_id", "label"])
    assert "embedding" not in faces.column_names and faces.num_rows > 50
    clusters = outputs.clusters()
    assert set(clusters.column("face_id").to_pylist()) == set(faces.column("face_id").to_pylist())
    actions = outputs.actions()
    assert actions.num_rows == images.num_rows
    assert outputs.summary()["actions"] == dict(
        zip(*np.unique(actions.column("action").to_pylist(), return_counts=True), strict=True)
    )
    assert outputs.identities().num_rows == outputs.run_info()["cluster"]["clusters"]

    # one stage again: nothing new, and the API says which stages it accepts
    again = facesieve.run(None, str(out), local_config(), stages=["clean"])
    assert again.steps["clean"].processed == 0
    with pytest.raises(ConfigError, match="stages must be"):
        facesieve.run(None, str(out), local_config(), stages=["nope"])


def test_open_run_errors_say_what_to_do(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a facesieve output root"):
        facesieve.open_run(str(tmp_path))
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(FacesieveError, match="run `facesieve clean` first"):
        facesieve.open_run(str(tmp_path)).actions()
