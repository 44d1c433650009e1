"""The index end to end with real FAISS: build, recall against exact search, stable ids,
incremental adds, rewrites and retraining, the kNN graph and its refresh (equal to a fresh
graph on an exact index), and `facesieve search`."""

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from facesieve.api import embeddings
from facesieve.cli.main import main
from facesieve.config import Config
from facesieve.devtools.synthetic import SphereModel, identities, write_embed_output
from facesieve.index.reader import IndexReader
from facesieve.outputs import read_folder
from facesieve.runner.pipeline import RunResult, run_command, run_embed
from facesieve.storage import LocalStore
from tests.integration.helpers import local_config

pytestmark = pytest.mark.integration

N, SHARD = 24_000, 4_000


def ivf_config(**index: object) -> Config:
    cfg = Config().with_overrides("run", runner="local")
    return cfg.with_overrides("index", **{"flat_below": 0, **index}).validate()


def index(out: Path, cfg: Config) -> RunResult:
    return run_command("index", str(out), cfg, stages=("index",), show_progress=False)


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    return identities(SphereModel(noise=0.8, shared=1.0, offset=0.1), N)


@pytest.fixture(scope="module")
def built(vectors, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("index") / "out"
    write_embed_output(LocalStore(out), *vectors, shard_size=SHARD)
    index(out, ivf_config(knn_k=0))
    return out


def test_ivfpq_recall_against_exact_search(built: Path) -> None:
    reader = IndexReader(LocalStore(built), ivf_config().index)
    assert reader.manifest.factory.startswith("IVF") and "PQ128x4fs" in reader.manifest.factory
    assert reader.manifest.total == N and reader.index.ntotal == N
    dense = reader.dense()
    base = dense.emb.astype(np.float32)  # the float16 values re-ranking compares
    queries = base[np.random.default_rng(1).choice(N, 300, replace=False)]
    exact = faiss.IndexFlatIP(512)
    exact.add(base)
    truth = dense.ids[exact.search(queries, 10)[1]]
    found, sims = reader.search_ids(queries, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # exact similarities, best first
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)  # a query in the index finds itself


def test_reranking_compares_float16_values_within_1e4_of_float32(built: Path) -> None:
    """Re-ranking holds every embedding as float16 (half the memory of the kNN graph): its
    similarities are the cosines of those values, and differ from the float32 ones by far less
    than any threshold the rules use."""
    reader = IndexReader(LocalStore(built), ivf_config().index)
    dense = reader.dense()
    assert dense.emb.dtype == np.float16 and dense.emb.nbytes == N * 512 * 2
    rows = np.random.default_rng(2).choice(N, 200, replace=False)
    found, sims = reader.search_ids(dense.emb[rows], 10, dense.ids[rows])
    ok = found >= 0
    assert ok.mean() > 0.99
    half = dense.emb[dense.positions(found[ok])].astype(np.float64)
    query = np.repeat(dense.emb[rows].astype(np.float64), 10, axis=0)[ok.reshape(-1)]
    cos = np.einsum("nd,nd->n", query, half) / np.linalg.norm(query, axis=1)
    np.testing.assert_allclose(sims[ok], cos / np.linalg.norm(half, axis=1), rtol=0, atol=1e-7)
    table = read_folder(LocalStore(built), "faces", ["index_id", "embedding"])
    stored = dict(zip(table.column("index_id").to_pylist(), embeddings(table), strict=True))
    full = np.stack([stored[int(i)] for i in found[ok]]).astype(np.float64)
    q32 = np.stack([stored[int(i)] for i in dense.ids[rows]]).astype(np.float64)
    q32 = np.repeat(q32, 10, axis=0)[ok.reshape(-1)]
    err = np.abs(np.einsum("nd,nd->n", q32, full) - sims[ok])
    assert 0 < err.max() < 1e-4


def test_embeddings_read_on_first_use_equal_those_read_at_once(built: Path) -> None:
    eager = IndexReader(LocalStore(built), ivf_config().index).dense()
    lazy = IndexReader(LocalStore(built), ivf_config().index).dense(embeddings=False)
    assert lazy._emb is None  # ids and tie keys only, until a row needs a vector
    assert np.array_equal(lazy.ids, eager.ids) and np.array_equal(lazy.ties, eager.ties)
    assert lazy.emb.shape == (N, 512) and np.array_equal(lazy.emb, eager.emb)


def test_incremental_add_rewrite_and_retrain(vectors, tmp_path: Path) -> None:
    emb, labels = vectors
    out = tmp_path / "out"
    store = LocalStore(out)
    head = 4 * SHARD
    write_embed_output(store, emb[:head], labels[:head], shard_size=SHARD)
    first = index(out, ivf_config(knn_k=0)).steps
    assert first["index-train"].processed == 1 and first["index-fill"].processed == 4
    manifest = json.loads((out / "index" / "manifest.json").read_text())
    assert manifest["trained_on"] == head
    before = {p: p.stat().st_mtime_ns for p in (out / "index").rglob("shards/*")}

    write_embed_output(store, emb[head:], labels[head:], shard_size=SHARD, first_part=4)
    second = index(out, ivf_config(knn_k=0)).steps
    assert second["index-train"].skipped == 1 and second["index-fill"].processed == 2
    grown = json.loads((out / "index" / "manifest.json").read_text())
    assert grown["generation"] == manifest["generation"] and grown["total"] == N
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # old shards untouched
    reader = IndexReader(store, ivf_config().index)
    ids, sims = reader.search_ids(emb[head + 5 : head + 6], 1)
    assert sims[0, 0] > 0.999 and ids[0, 0] >> 32 in (4, 5)

    nothing = index(out, ivf_config(knn_k=0)).steps
    assert all(r.processed == 0 for r in nothing.values())

    noisy = emb[:SHARD] + np.float32(1e-3)  # embed wrote part 0 again, with other vectors
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    write_embed_output(store, noisy, labels[:SHARD], shard_size=SHARD)
    rewritten = index(out, ivf_config(knn_k=0)).steps
    assert rewritten["index-fill"].processed == 1 and rewritten["index-train"].processed == 0

    retrained = index(out, ivf_config(knn_k=0, retrain_factor=1.2)).steps  # 24k > 1.2 x 16k
    assert retrained["index-train"].processed == 1 and retrained["index-fill"].processed == 6
    latest = json.loads((out / "index" / "manifest.json").read_text())
    assert latest["generation"] != manifest["generation"] and latest["trained_on"] == N
    old = out / "index" / f"gen-{manifest['generation']}"
    assert not old.exists() or not [p for p in old.rglob("*") if p.is_file()]
    reader = IndexReader(store, ivf_config().index)
    ids, _ = reader.search_ids(emb[head + 5 : head + 6], 1)
    assert ids[0, 0] >> 32 in (4, 5)  # ids survive retraining


def _graph(out: Path) -> dict[str, tuple[tuple[int, ...], tuple[float, ...]]]:
    """face_id -> (neighbour face ids as ranks, sims): comparable across output roots."""
    table = pq.read_table(out / "index" / "knn")
    id_to_face = dict(zip(table.column("id").to_pylist(), table.column("face_id").to_pylist(),
                          strict=True))  # fmt: skip
    rows = {}
    for r in table.to_pylist():
        nb = tuple(id_to_face.get(i, "?") for i in r["neighbor_ids"] if i >= 0)
        rows[r["face_id"]] = (nb, tuple(round(s, 6) for s in r["neighbor_sims"] if s == s))
    return rows


def _delete_rows(out: Path, shard: str, n: int) -> None:
    """What embed writes when ``n`` files of a shard are deleted: the other rows, same ids."""
    for folder in ("faces", "images"):
        path = out / folder / f"{shard}.parquet"
        pq.write_table(pq.read_table(path).slice(n), path)
    marker_path = out / "_done" / "embed" / f"{shard}.json"
    marker = json.loads(marker_path.read_text())
    marker["digest"] += "-thinned"
    marker["stats"]["faces"] -= n
    marker_path.write_text(json.dumps(marker))


@pytest.mark.parametrize("flat", [True, False], ids=["exact", "ivf"])
def test_knn_refresh_matches_a_fresh_graph(vectors, tmp_path: Path, flat: bool) -> None:
    emb, labels = vectors
    n = 6_000
    cfg = ivf_config(knn_k=8, flat_below=10**6 if flat else 0)
    out, fresh = tmp_path / "nightly", tmp_path / "fresh"
    write_embed_output(LocalStore(out), emb[:n], labels[:n], shard_size=1_000)
    index(out, cfg)
    # a night later: one shard gone (as embed leaves it: no marker, no outputs), 150 files
    # deleted from another, two new shards
    gone, thinned = sorted((out / "_done" / "embed").iterdir())[:2]
    for path in (
        gone,
        out / "faces" / f"{gone.stem}.parquet",
        out / "images" / f"{gone.stem}.parquet",
    ):
        path.unlink()
    _delete_rows(out, thinned.stem, 150)
    write_embed_output(LocalStore(out), emb[n : n + 2_000], labels[n : n + 2_000], 1_000, 6)
    steps = index(out, cfg).steps
    assert steps["knn"].processed == 3 and steps["knn-refresh"].processed == 1
    assert steps["knn"].markers[thinned.stem].stats["searched"] == 0  # its rows were kept
    assert steps["knn-refresh"].totals["rows_refreshed"] > 0
    assert steps["index-fill"].removed == 1 and steps["knn"].removed == 1

    for folder in ("faces", "images", "_done/embed"):  # the same faces, in an empty output root
        shutil.copytree(out / folder, fresh / folder)
    index(fresh, cfg)
    a, b = _graph(out), _graph(fresh)
    assert a.keys() == b.keys() and len(a) == n - 1_000 - 150 + 2_000
    same = np.mean([a[f] == b[f] for f in a])
    if flat:
        assert same == 1.0  # exact index: the refreshed graph is the fresh graph
    else:  # IVF: both are approximate; same-identity neighbours agree almost everywhere
        overlap = np.mean([len(set(a[f][0]) & set(b[f][0])) / max(len(b[f][0]), 1) for f in a])
        assert overlap >= 0.97, overlap


def test_search_cli_on_the_demo_data(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    run_embed(str(demo_data), str(out), local_config(), show_progress=False)
    assert main(["index", str(out), "--runner", "local", "--json", "-q"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steps"]["knn"]["totals"]["faces"] == info["steps"]["index-fill"]["totals"][
        "vectors"] > 100  # fmt: skip
    query = demo_data / "players_03" / "2.jpg"
    assert main(["search", str(out), str(query), "-k", "4", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    top = result["faces"][0]["matches"]
    assert top[0]["uri"] == str(query) and top[0]["similarity"] > 0.999
    assert [m["label"] for m in top].count("players_03") >= 3


def test_merged_index_file_searches_like_the_shards(built: Path, vectors) -> None:
    cfg = ivf_config(knn_k=0)
    queries = vectors[0][:50]
    by_shards = IndexReader(LocalStore(built), cfg.index).search_ids(queries, 10)
    index(built, cfg.with_overrides("index", merge=True))
    manifest = json.loads((built / "index" / "manifest.json").read_text())
    assert manifest["merged"] and manifest["merged"]["count"] == N
    assert (built / manifest["merged"]["file"]).is_file()
    reader = IndexReader(LocalStore(built), cfg.index)
    assert reader.index.ntotal == N
    merged = reader.search_ids(queries, 10)
    np.testing.assert_array_equal(by_shards[0], merged[0])
    np.testing.assert_allclose(by_shards[1], merged[1], atol=1e-6)
