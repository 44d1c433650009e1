"""The index end to end with real FAISS: build, recall against exact search, stable ids,
incremental adds, retraining, the kNN graph and its resume, and `facesieve search`."""

import json
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from facesieve.cli.main import main
from facesieve.config import Config
from facesieve.devtools.synthetic import SphereModel, identities, write_embed_output
from facesieve.index.build import build_index
from facesieve.index.knn import KNN_KEY, build_knn, compute_part, knn_key
from facesieve.index.reader import IndexReader
from facesieve.runner.job import run_embed
from facesieve.storage import LocalStore
from tests.integration.helpers import local_config

pytestmark = pytest.mark.integration

N, SHARD = 24_000, 4_000


def ivf_config(**index: object) -> Config:
    cfg = Config().with_overrides("run", runner="local")
    return cfg.with_overrides("index", flat_below=0, knn_batch=5_000, **index).validate()


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    return identities(SphereModel(noise=0.8, shared=1.0, offset=0.1), N)


@pytest.fixture(scope="module")
def built(vectors, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("index") / "out"
    write_embed_output(LocalStore(out), *vectors, shard_size=SHARD)
    build_index(str(out), ivf_config())
    return out


def test_ivfpq_recall_against_exact_search(built: Path) -> None:
    reader = IndexReader(LocalStore(built), ivf_config().index)
    assert reader.manifest.factory.startswith("IVF") and "PQ64" in reader.manifest.factory
    assert reader.manifest.total == N and reader.index.ntotal == N
    dense = reader.dense()
    queries = dense.emb[np.random.default_rng(1).choice(N, 300, replace=False)]
    exact = faiss.IndexFlatIP(512)
    exact.add(dense.emb)
    truth = dense.ids[exact.search(queries, 10)[1]]
    found, sims = reader.search_ids(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # exact similarities, best first
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)  # a query in the index finds itself


def test_ids_are_deterministic_across_rebuilds(built: Path, vectors, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_embed_output(LocalStore(again), *vectors, shard_size=SHARD)
    build_index(str(again), ivf_config())
    a = IndexReader(LocalStore(built), ivf_config().index).dense()
    b = IndexReader(LocalStore(again), ivf_config().index).dense()
    assert dict(zip(a.face_ids.to_pylist(), a.ids.tolist(), strict=True)) == dict(
        zip(b.face_ids.to_pylist(), b.ids.tolist(), strict=True)
    )


def test_incremental_add_refill_and_retrain(vectors, tmp_path: Path) -> None:
    emb, labels = vectors
    out = tmp_path / "out"
    store = LocalStore(out)
    head = 4 * SHARD
    write_embed_output(store, emb[:head], labels[:head], shard_size=SHARD)
    first = build_index(str(out), ivf_config())
    assert first.retrained and len(first.added) == 4 and first.manifest.trained_on == head
    before = {p: p.stat().st_mtime_ns for p in (out / "index").rglob("shards/*")}

    write_embed_output(store, emb[head:], labels[head:], shard_size=SHARD, first_part=4)
    second = build_index(str(out), ivf_config())
    assert not second.retrained and len(second.added) == 2 and not second.refilled
    assert second.manifest.generation == first.manifest.generation and second.manifest.total == N
    numbers = {e.shard_id: e.number for e in second.manifest.shards.values()}
    assert sorted(numbers[s] for s in second.added) == [4, 5]  # new shards get new numbers
    assert all(numbers[s] == e.number for s, e in first.manifest.shards.items())
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # old shards untouched
    reader = IndexReader(store, ivf_config().index)
    new_vec = emb[head + 5 : head + 6]
    ids, sims = reader.search_ids(new_vec, 1)
    assert sims[0, 0] > 0.999 and ids[0, 0] >> 32 in (4, 5)

    nothing = build_index(str(out), ivf_config())
    assert not (nothing.added or nothing.refilled or nothing.removed or nothing.retrained)

    write_embed_output(store, emb[:SHARD], labels[:SHARD], shard_size=SHARD)  # embed redid part 0
    refilled = build_index(str(out), ivf_config())
    assert len(refilled.refilled) == 1 and not refilled.added and not refilled.retrained

    grown = build_index(str(out), ivf_config(retrain_factor=1.2))  # 24k > 1.2 x 16k trained on
    assert grown.retrained and grown.manifest.generation != first.manifest.generation
    assert grown.manifest.trained_on == N
    old = out / "index" / f"gen-{first.manifest.generation}"
    assert not [p for p in old.rglob("*") if p.is_file()]  # the old generation is deleted


def test_knn_graph_is_exact_and_resumes(built: Path) -> None:
    store = LocalStore(built)
    cfg = ivf_config(knn_k=8).index
    reader = IndexReader(store, cfg)
    dense = reader.dense()
    key = knn_key(reader, 8)
    # a run killed after two parts: those parts exist, nothing else does
    for b in range(2):
        part = compute_part(reader, dense, b * 5_000, (b + 1) * 5_000, 8)
        from facesieve.runner.shard_task import parquet_bytes

        store.write_bytes(f"index/knn-parts/{key}/part-{b:05d}.parquet", parquet_bytes(part))
    resumed = build_knn(store, cfg, reader)
    assert resumed.parts_reused == 2 and resumed.parts_total == 5
    graph = pq.read_table(built / KNN_KEY)
    assert graph.num_rows == N
    again = build_knn(store, cfg, reader)
    assert again.up_to_date
    (built / "index" / "knn.json").unlink()
    fresh = build_knn(store, cfg, reader)
    assert fresh.parts_reused == 0
    assert pq.read_table(built / KNN_KEY).equals(graph)

    ids = np.stack(graph.column("neighbor_ids").to_numpy(zero_copy_only=False))
    sims = np.stack(graph.column("neighbor_sims").to_numpy(zero_copy_only=False))
    own = graph.column("id").to_numpy()
    assert not (ids == own[:, None]).any()  # a face is not its own neighbour
    assert (np.diff(sims, axis=1) <= 1e-6).all()
    rows = np.random.default_rng(2).choice(N, 50, replace=False)  # similarities are exact
    got = np.einsum("nd,nkd->nk", dense.emb[rows], dense.emb[dense.positions(ids[rows])])
    np.testing.assert_allclose(got, sims[rows], atol=1e-5)


def test_search_cli_on_the_demo_data(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    run_embed(str(demo_data), str(out), local_config(), show_progress=False)
    assert main(["index", str(out), "--runner", "local", "--json", "-q"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["factory"] == "IDMap2,Flat" and info["knn"]["faces"] == info["vectors"] > 100
    query = demo_data / "players_03" / "2.jpg"
    assert main(["search", str(out), str(query), "-k", "4", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    top = result["faces"][0]["matches"]
    assert top[0]["uri"] == str(query) and top[0]["similarity"] > 0.999
    assert [m["label"] for m in top].count("players_03") >= 3


def test_merged_index_file_searches_like_the_shards(built: Path, vectors) -> None:
    from facesieve.index.build import merge_shards

    cfg = ivf_config()
    queries = vectors[0][:50]
    by_shards = IndexReader(LocalStore(built), cfg.index).search_ids(queries, 10)
    manifest = merge_shards(str(built), cfg)
    assert manifest.merged and manifest.merged["count"] == N
    assert (built / manifest.merged["file"]).is_file()
    reader = IndexReader(LocalStore(built), cfg.index)
    assert reader.index.ntotal == N
    merged = reader.search_ids(queries, 10)
    np.testing.assert_array_equal(by_shards[0], merged[0])
    np.testing.assert_allclose(by_shards[1], merged[1], atol=1e-6)
