"""One shard on several preprocessing threads gives the same bytes as one thread, and the same
faces as the plain sequential engine; large JPEGs decoded at a reduced scale keep the file's size
and original pixel coordinates."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from facesieve import schema
from facesieve.config import Config
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import FaceEngine
from facesieve.faces.stage import DRAFT_MARGIN
from facesieve.runner.pipeline import run_embed
from tests.conftest import SHARED_FACES, jpeg_bytes, photo_pixels

pytestmark = pytest.mark.integration
BIG_SIDE = 2800  # decoded at 1/4 for detection by default (700 >= det_size 640)


@pytest.fixture(scope="module")
def folder(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo set (broken files included), two large group photos, and real photos from
    ../shared when it is there: one folder layout, one shard."""
    root = tmp_path_factory.mktemp("parallel") / "data"
    shutil.copytree(demo_data, root)
    big = root / "zz_big"
    big.mkdir()
    for name in ("players.jpg", "gdp.jpg"):
        px = photo_pixels(name)
        scale = BIG_SIDE / max(px.shape[:2])
        px = cv2.resize(px, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        (big / name).write_bytes(jpeg_bytes(px, quality=92))
    for source, n in (("celeba_subset", 24), ("lfw", 24)):
        files = sorted((SHARED_FACES / "labeled" / source).rglob("*.jpg"))[:n]
        for f in files:
            target = root / f"shared_{source}" / f.name
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(f, target)
    return root


def _config(threads: int) -> Config:
    cfg = Config().with_overrides("source", shard_size=100_000)
    return cfg.with_overrides(
        "run", runner="local", device="cpu", threads_per_worker=threads
    ).validate()


@pytest.fixture(scope="module")
def outputs(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    runs = {}
    for threads in (1, 3):
        out = tmp_path_factory.mktemp(f"out{threads}") / "out"
        result = run_embed(str(folder), str(out), _config(threads), show_progress=False)
        assert result.exit_code == 0 and result.steps["embed"].processed == 1
        runs[threads] = out
    return runs


def _parquet_files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for folder in ("images", "faces")
        for p in sorted((out / folder).glob("*.parquet"))
    }


def test_threads_do_not_change_a_byte(outputs: dict[int, Path]) -> None:
    one, many = _parquet_files(outputs[1]), _parquet_files(outputs[3])
    assert len(one) == 2 and one.keys() == many.keys()
    for key in one:
        assert one[key] == many[key], key


def test_every_file_one_row_in_file_order_bad_files_with_reasons(
    folder: Path, outputs: dict[int, Path]
) -> None:
    images = pq.read_table(next((outputs[3] / "images").glob("*.parquet"))).to_pylist()
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    assert sorted(r["uri"] for r in images) == files
    bad = [r for r in images if r["status"] in (schema.DECODE_ERROR, schema.UNSUPPORTED)]
    assert {Path(r["uri"]).name for r in bad} == {"truncated.jpg", "notes.txt"}
    assert all(r["error"] for r in bad)


def test_rows_match_the_sequential_engine(outputs: dict[int, Path]) -> None:
    """Each image through ``FaceEngine.analyze`` alone (no pool, no pipelining, one image per
    call) gives the embed step's faces exactly."""
    out = outputs[3]
    images = pq.read_table(next((out / "images").glob("*.parquet"))).to_pylist()
    faces = pq.read_table(next((out / "faces").glob("*.parquet"))).to_pylist()
    by_image: dict[str, list[dict]] = {}
    for f in faces:
        by_image.setdefault(f["image_id"], []).append(f)
    cfg = _config(1)
    engine = FaceEngine(cfg.faces, device="cpu", threads=1)
    checked = 0
    for row in images:
        if row["status"] not in (schema.OK, schema.NO_FACE):
            continue
        data = Path(row["uri"]).read_bytes()
        dec = decode_image(data, 40_000_000, 1 << 26, DRAFT_MARGIN * cfg.faces.det_size)
        assert dec.pixels is not None and (dec.width, dec.height) == (row["width"], row["height"])
        found = engine.analyze([dec.pixels], [dec.scale], sources=[data])[0]
        got = sorted(by_image.get(row["image_id"], []), key=lambda f: f["face_index"])
        assert len(found) == len(got) == row["n_faces"]
        for face, stored in zip(found, got, strict=True):
            assert np.array_equal(face.embedding, np.asarray(stored["embedding"], np.float32))
            assert np.array_equal(face.bbox, np.asarray(stored["bbox"], np.float32))
        checked += 1
    assert checked >= 100


def test_reduced_decoding_keeps_original_size_and_coordinates(outputs: dict[int, Path]) -> None:
    """The large copies of the bundled photos: detected at 1/4, yet their rows hold the file's
    size and boxes in its pixels, and the same faces as a full decode with nearly the same
    embeddings (their small faces are cropped from a full decode again)."""
    out = outputs[3]
    images = pq.read_table(next((out / "images").glob("*.parquet"))).to_pylist()
    faces = pq.read_table(next((out / "faces").glob("*.parquet"))).to_pylist()
    big = [r for r in images if "/zz_big/" in r["uri"]]
    assert len(big) == 2
    engine = FaceEngine(_config(1).faces, device="cpu", threads=1)
    cosines = []
    for row in big:
        data = Path(row["uri"]).read_bytes()
        full = decode_image(data, 40_000_000, 1 << 26)
        assert full.pixels is not None
        assert (row["width"], row["height"]) == (full.width, full.height)
        assert max(row["width"], row["height"]) == BIG_SIDE
        reference = engine.analyze([full.pixels])[0]
        stored = [f for f in faces if f["image_id"] == row["image_id"]]
        assert len(stored) == row["n_faces"] >= 5
        assert abs(len(stored) - len(reference)) <= 1  # tiny faces at the detector's limit
        boxes = np.stack([np.asarray(f["bbox"]) for f in stored])
        for ref in (f for f in reference if f.face_px >= 60):
            ious = _iou(ref.bbox, boxes)
            assert ious.max() > 0.8  # original pixels, not the reduced image's
            match = stored[int(np.argmax(ious))]
            if ref.face_px >= 90:
                cosines.append(float(ref.embedding @ np.asarray(match["embedding"], np.float32)))
    assert len(cosines) >= 15 and float(np.median(cosines)) > 0.98


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)
