"""The embed job end to end on generated labeled data, in-process (the Ray runner has its own
tests): contracts, skip-if-done, fingerprint and content changes, and bad input."""

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facesieve import schema
from facesieve.runner.pipeline import run_embed
from tests.conftest import jpeg_bytes
from tests.integration.helpers import local_config, marker_stats, read_outputs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedded(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("embed") / "out"
    return out, run_embed(str(demo_data), str(out), local_config(), show_progress=False)


def test_one_images_row_per_input_file_and_contract_schemas(demo_data: Path, embedded) -> None:
    out, result = embedded
    tables = read_outputs(out)
    images, faces = tables["images"], tables["faces"]
    files = sorted(str(p) for p in demo_data.rglob("*") if p.is_file())
    assert sorted(images.column("uri").to_pylist()) == files
    assert images.schema.equals(schema.IMAGES) and faces.schema.equals(schema.FACES)
    rows = {Path(r["uri"]).name + "@" + r["label"]: r for r in images.to_pylist()}
    first = sorted(p.name for p in demo_data.iterdir())[0]
    assert rows[f"truncated.jpg@{first}"]["status"] == schema.DECODE_ERROR
    assert rows[f"notes.txt@{first}"]["status"] == schema.UNSUPPORTED
    assert rows[f"sky.jpg@{first}"]["status"] == schema.NO_FACE
    ok = [r for r in images.to_pylist() if r["status"] == schema.OK]
    assert len(ok) >= 0.9 * (len(files) - 3)
    assert all(r["n_faces"] >= 1 and len(r["sha256"]) == 64 for r in ok)
    # n_faces matches the faces table, face ids follow the contract
    per_image = {}
    for f in faces.to_pylist():
        per_image[f["image_id"]] = per_image.get(f["image_id"], 0) + 1
        assert f["face_id"] == f"{f['image_id']}#{f['face_index']}"
    assert per_image == {r["image_id"]: r["n_faces"] for r in images.to_pylist() if r["n_faces"]}
    emb = np.stack(faces.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert result.exit_code == 0


def test_run_json_and_markers_add_up(embedded) -> None:
    out, result = embedded
    info = json.loads((out / "run.json").read_text())
    stats = marker_stats(out)
    assert info["shards"]["total"] == len(stats) == result.steps["embed"].processed
    assert (
        info["totals"]["images"]
        == sum(s["images"] for s in stats.values())
        == result.steps["embed"].totals["images"]
    )
    assert info["totals"]["faces"] == sum(s["faces"] for s in stats.values())
    assert sum(info["totals"]["status"].values()) == info["totals"]["images"]
    assert len(info["fingerprint"]) == 16 and info["throughput"]["images_per_s"] > 0


def test_rerun_skips_done_shards_and_redoes_changed_ones(demo_data: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    out = tmp_path / "out"
    cfg = local_config()
    first = run_embed(str(data), str(out), cfg, show_progress=False).steps["embed"]
    before = {p.name: p.stat().st_mtime_ns for p in (out / "faces").iterdir()}

    again = run_embed(str(data), str(out), cfg, show_progress=False).steps["embed"]
    assert again.processed == 0 and again.skipped == first.units
    assert again.totals == first.totals
    assert {p.name: p.stat().st_mtime_ns for p in (out / "faces").iterdir()} == before

    # a new image goes into a new shard; nothing else is redone
    first_folder = sorted(p for p in data.iterdir() if p.is_dir())[0]
    (first_folder / "zz_new.jpg").write_bytes((first_folder / "0.jpg").read_bytes())
    grown = run_embed(str(data), str(out), cfg, show_progress=False).steps["embed"]
    assert grown.processed == 1 and grown.units == first.units + 1
    assert grown.totals["images"] == first.totals["images"] + 1
    assert {p.name: p.stat().st_mtime_ns for p in (out / "faces").iterdir() if p.name in before} \
        == before  # fmt: skip

    # a deleted image redoes its shard, reusing every other row (nothing is embedded again)
    (first_folder / "1.jpg").unlink()
    shrunk = run_embed(str(data), str(out), cfg, show_progress=False).steps["embed"]
    assert shrunk.processed == 1 and shrunk.totals["images"] == first.totals["images"]
    (redone,) = [m for m in shrunk.markers.values() if m.finished_at > max(
        m2.finished_at for m2 in grown.markers.values())]  # fmt: skip
    assert redone.stats["embedded"] == 0 and redone.stats["reused"] >= 10

    # a changed detection threshold changes the fingerprint: everything is redone
    stricter = cfg.with_overrides("faces", det_threshold=0.7)
    redo = run_embed(str(data), str(out), stricter, show_progress=False).steps["embed"]
    assert redo.processed == redo.units and redo.totals.get("reused", 0) == 0
    assert redo.totals["faces"] < grown.totals["faces"]


def test_every_kind_of_bad_input_becomes_a_row(tmp_path: Path) -> None:
    import io
    import tarfile

    from tests.conftest import photo_pixels, png_bomb

    good = jpeg_bytes(photo_pixels("yaoming.jpg"))
    bomb = png_bomb(60_000, 60_000)
    members = {
        "000.jpg": good,
        "001.jpg": good[: len(good) // 2],
        "002.jpg": b"",
        "003.jpg": b"<html>not an image</html>",
        "004.png": bomb,
        "005.bin": b"\x00\x01",
        "../../escape.jpg": good,
        "/tmp/facesieve-abs-escape.jpg": good,
        "006.jpg": b"x" * 3_000_000,
    }
    src = tmp_path / "in"
    src.mkdir()
    with tarfile.open(src / "shard-000.tar", "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cfg = local_config().with_overrides("source", max_image_bytes=2_000_000)
    result = run_embed(str(src), str(tmp_path / "out"), cfg, show_progress=False)
    assert result.exit_code == 0 and result.steps["embed"].processed == 1
    rows = {
        r["uri"].split("#", 1)[1]: r for r in pq.read_table(tmp_path / "out" / "images").to_pylist()
    }
    assert set(rows) == set(members)
    expected = {
        "000.jpg": schema.OK,
        "001.jpg": schema.DECODE_ERROR,
        "002.jpg": schema.DECODE_ERROR,
        "003.jpg": schema.DECODE_ERROR,
        "004.png": schema.TOO_LARGE,
        "005.bin": schema.UNSUPPORTED,
        "../../escape.jpg": schema.UNSUPPORTED,
        "/tmp/facesieve-abs-escape.jpg": schema.UNSUPPORTED,
        "006.jpg": schema.TOO_LARGE,
    }
    assert {k: r["status"] for k, r in rows.items()} == expected
    assert all(r["error"] for k, r in rows.items() if k != "000.jpg")
    assert not Path("/tmp/facesieve-abs-escape.jpg").exists()
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path.parent / "escape.jpg").exists()
