"""The Ray runner: 2 worker actors give the same outputs as in-process runs, a unit that runs past
its deadline is stopped, retried and reported, and index shards are filled by Ray workers."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from facesieve.runner.pipeline import run_embed, run_pipeline  # noqa: E402
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
    a, b = local.steps["embed"], on_ray.steps["embed"]
    assert on_ray.exit_code == 0 and b.processed == a.processed >= 4
    assert b.totals["images"] == a.totals["images"]
    assert_same_outputs(tmp_path / "local", tmp_path / "ray")


def test_a_unit_past_its_deadline_is_stopped_retried_and_reported(
    ray_session, demo_data: Path, tmp_path: Path
) -> None:
    src = tmp_path / "tars"
    make_tars(demo_data, src, 2)
    slow = local_config().with_overrides(
        "run", runner="ray", workers=2, retries=1, unit_timeout_s=0.2, retry_backoff_s=0.1
    )
    result = run_pipeline(str(src), str(tmp_path / "out"), slow, show_progress=False)
    assert result.exit_code == 1 and result.stopped and "index" in result.stopped
    failed = result.steps["embed"].failed
    assert len(failed) == 2 and all(f.attempts == 2 and "ran past" in f.error for f in failed)
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert {f["uri"] for f in info["shards"]["failed"]} == {str(p) for p in src.glob("*.tar")}
    assert not (tmp_path / "out" / "_done" / "embed").exists()
    assert not (tmp_path / "out" / "index").exists()  # no global step ran on a partial input
    # the next run, with time enough, does the failed units and everything after them
    cfg = local_config().with_overrides("run", runner="ray", workers=2)
    again = run_pipeline(str(src), str(tmp_path / "out"), cfg, show_progress=False)
    assert again.exit_code == 0 and again.steps["embed"].processed == 2
    assert again.steps["clean"].processed == 1


def test_index_shards_are_filled_by_ray_workers(ray_session, tmp_path: Path) -> None:
    from facesieve.config import Config
    from facesieve.devtools.synthetic import SphereModel, identities, write_embed_output
    from facesieve.index.reader import IndexReader
    from facesieve.runner.pipeline import run_command
    from facesieve.storage import LocalStore

    emb, labels = identities(SphereModel(noise=0.8, shared=1.0, offset=0.1), 12_000)
    write_embed_output(LocalStore(tmp_path), emb, labels, shard_size=2_000)
    cfg = Config().with_overrides("index", flat_below=0, knn_k=0)
    cfg = cfg.with_overrides("run", runner="ray", workers=2).validate()
    result = run_command("index", str(tmp_path), cfg, stages=("index",), show_progress=False)
    fill = result.steps["index-fill"]
    assert fill.processed == 6 and fill.totals["vectors"] == 12_000
    reader = IndexReader(LocalStore(tmp_path), cfg.index)
    assert reader.manifest.total == 12_000
    assert all(e.count == 2_000 for e in reader.manifest.shards.values())
    ids, sims = reader.search_ids(emb[:20], 1)
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)
    assert len(set(ids[:, 0].tolist())) == 20 and set((ids[:, 0] >> 32).tolist()) <= set(range(6))
