"""The Ray runner: 2 worker actors give the same outputs as in-process runs, and a broken shard
is retried, reported and does not stop the others."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from facesieve.runner.job import run_embed  # noqa: E402
from tests.integration.helpers import assert_same_outputs, local_config  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def make_tars(data: Path, dest: Path, n_tars: int) -> list[Path]:
    """WebDataset shards of the demo images, labels in .json sidecars."""
    images = sorted(p for p in data.rglob("*.jpg"))
    dest.mkdir(parents=True, exist_ok=True)
    tars = []
    for t in range(n_tars):
        path = dest / f"shard-{t:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for i, img in enumerate(images[t::n_tars]):
                label = json.dumps({"label": img.parent.name}).encode()
                for name, payload in ((f"{i:05d}.jpg", img.read_bytes()), (f"{i:05d}.json", label)):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
        tars.append(path)
    return tars


def test_two_ray_workers_match_the_in_process_run(
    ray_session, demo_data: Path, tmp_path: Path
) -> None:
    local = run_embed(str(demo_data), str(tmp_path / "local"), local_config(), show_progress=False)
    cfg = local_config().with_overrides("run", runner="ray", workers=2)
    on_ray = run_embed(str(demo_data), str(tmp_path / "ray"), cfg, show_progress=False)
    assert on_ray.exit_code == 0 and on_ray.shards_processed == local.shards_processed >= 4
    assert on_ray.totals["images"] == local.totals["images"]
    assert_same_outputs(tmp_path / "local", tmp_path / "ray")


def test_a_failing_shard_is_retried_and_reported(
    ray_session, demo_data: Path, tmp_path: Path
) -> None:
    src = tmp_path / "tars"
    make_tars(demo_data, src, 2)
    (src / "shard-broken.tar").symlink_to(tmp_path / "does-not-exist.tar")
    cfg = local_config().with_overrides("run", runner="ray", workers=2, retries=1)
    result = run_embed(str(src), str(tmp_path / "out"), cfg, show_progress=False)
    assert result.exit_code == 1
    (failed,) = result.failed
    assert failed.shard.uri.endswith("shard-broken.tar") and failed.attempts == 2
    assert "cannot open" in (failed.error or "")
    assert result.shards_processed == 2
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["shards"]["failed"][0]["uri"].endswith("shard-broken.tar")
    assert len(list((tmp_path / "out" / "images").iterdir())) == 2
    # the rerun only retries the broken shard
    again = run_embed(str(src), str(tmp_path / "out"), cfg, show_progress=False)
    assert again.shards_skipped == 2 and len(again.failed) == 1


def test_index_shards_are_filled_by_ray_tasks(ray_session, tmp_path: Path) -> None:
    from facesieve.config import Config
    from facesieve.devtools.synthetic import SphereModel, identities, write_embed_output
    from facesieve.index.build import build_index
    from facesieve.index.reader import IndexReader
    from facesieve.storage import LocalStore

    emb, labels = identities(SphereModel(noise=0.8, shared=1.0, offset=0.1), 12_000)
    write_embed_output(LocalStore(tmp_path), emb, labels, shard_size=2_000)
    cfg = (
        Config().with_overrides("index", flat_below=0, knn_k=0).with_overrides("run", runner="ray")
    )
    result = build_index(str(tmp_path), cfg.validate())
    assert len(result.added) == 6 and result.manifest.total == 12_000
    assert all(e.count == 2_000 for e in result.manifest.shards.values())
    ids, sims = IndexReader(LocalStore(tmp_path), cfg.index).search_ids(emb[:20], 1)
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    assert len(set(ids[:, 0].tolist())) == 20 and set((ids[:, 0] >> 32).tolist()) <= set(range(6))
