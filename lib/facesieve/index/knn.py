"""The kNN graph, ``OUT/index/knn/<shard_id>.parquet``: each face's K nearest other faces.

Two steps keep it equal to a fresh build while doing work in proportion to the change:

- ``knn``: one unit per faces shard, redone when the shard's faces or the index training
  change; it searches the whole current index for each of the shard's faces (approximate
  candidates re-ranked by cosine on the float16 embeddings) and records which index state it
  searched.
- ``knn-refresh``: one unit that brings the rows of every other shard up to date with the
  current index. Each shard's rows are complete for some earlier index state (the one its unit
  searched, or the one the last refresh reached); against that state the refresh
  - recomputes, with a full search, every row that points at a face that is gone (ids are never
    reused, so "gone" means the id is not in the index any more), and
  - merges in the faces that joined since: with an exact (flat) index it compares the rows with
    every new face (a dense product, exact like a fresh build); with an IVF index it takes the
    new faces' own rows as candidates (a face X gains new face Y when X is among Y's neighbours
    and Y beats X's K-th neighbour), which is as approximate as the index search itself.
  It rewrites only the files whose rows changed, and remembers the index state every row is now
  complete for. An index state is the sorted list of face ids the index held, kept as
  ``index/states/<fingerprint>.npy`` by the refresh that reached it and pruned once no row
  refers to it; "joined since" is the set difference with today's ids.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from facesieve.config import IndexConfig
from facesieve.errors import StorageError
from facesieve.index.manifest import Manifest
from facesieve.index.reader import DenseEmbeddings, IndexReader, cosines, top_k
from facesieve.outputs import faces_key, parquet_bytes, positions, read_parquet, read_parquets
from facesieve.storage.base import Store
from facesieve.work import Marker, Resources, Unit, UnitOutput, digest, read_markers
from facesieve.work.contract import Progress

log = logging.getLogger(__name__)

KNN_PREFIX = "index/knn/"
STATES_PREFIX = "index/states/"
VERSION = 2  # 2: re-ranked on float16 values
BATCH = 2048  # faces searched at once inside a unit
REFRESH_STEP, REFRESH_UNIT = "knn-refresh", "refresh"


def knn_file(shard_id: str) -> str:
    return f"{KNN_PREFIX}{shard_id}.parquet"


def state_key(fingerprint: str) -> str:
    return f"{STATES_PREFIX}{fingerprint}.npy"


def knn_schema(k: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("id", pa.int64(), nullable=False),
            pa.field("neighbor_ids", pa.list_(pa.int64(), k), nullable=False),  # -1: none
            pa.field("neighbor_sims", pa.list_(pa.float32(), k), nullable=False),  # NaN: none
        ]
    )


def graph_k(cfg: IndexConfig, total: int) -> int:
    return min(cfg.knn_k, max(total - 1, 1))


def knn_table(face_ids: pa.Array, ids: np.ndarray, nb: np.ndarray, sims: np.ndarray) -> pa.Table:
    k = nb.shape[1]
    sims = np.where((nb >= 0) & np.isfinite(sims), sims, np.nan).astype(np.float32)
    return pa.Table.from_arrays(
        [
            face_ids,
            pa.array(np.asarray(ids, np.int64)),
            pa.FixedSizeListArray.from_arrays(pa.array(nb.reshape(-1).astype(np.int64)), k),
            pa.FixedSizeListArray.from_arrays(pa.array(sims.reshape(-1)), k),
        ],
        schema=knn_schema(k),
    )


class KnnStep:
    """One unit per faces shard: its faces' neighbours in the whole current index."""

    name = "knn"
    item_name = "faces"
    owned_prefixes = (KNN_PREFIX,)

    def __init__(self, out: Store, cfg: IndexConfig, manifest: Manifest) -> None:
        self.out, self.cfg, self.manifest = out, cfg, manifest
        self.k = graph_k(cfg, manifest.total)
        # every worker holds all embeddings for re-ranking (1 KB per face as float16, plus the
        # index and ids: 1.5 GB at 1M faces, measured): one worker per node, with all its cores
        memory_gb = round(manifest.total * 1.5e-6 + 0.5, 1)
        self.resources = Resources(cpus=1.0, memory_gb=memory_gb, per_node=True)
        self.reader: IndexReader | None = None

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        params = [self.k, self.cfg.knn_candidates, self.cfg.nprobe]
        refresh = read_markers(self.out, REFRESH_STEP).get(REFRESH_UNIT)
        units = []
        for sid, e in sorted(self.manifest.shards.items()):
            previous = done.get(sid)
            base = None  # the index state the shard's previous rows are complete for
            if (
                previous is not None
                and previous.meta.get("params") == params
                and previous.meta.get("generation") == self.manifest.generation
            ):
                covered = (
                    refresh is not None and refresh.meta["covered"].get(sid) == previous.digest
                )
                base = refresh.meta["target"] if covered else previous.meta.get("against")
            d = digest(self.name, VERSION, e.digest, params)
            units.append(Unit(sid, d, sid, e.count, KnnWork(sid, base)))
        return units

    def setup(self, device: str, threads: int) -> None:
        import faiss

        threads = threads or os.cpu_count() or 1  # 0: the libraries' default, every core
        faiss.omp_set_num_threads(threads)
        self.reader = IndexReader(self.out, self.cfg, threads)
        self.reader.dense()

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        """Rows for the shard's faces: kept from the shard's previous file where the face is
        still there (the refresh brings them up to date), searched for the others."""
        if self.reader is None:
            raise RuntimeError("KnnStep.setup() must run before process()")
        work: KnnWork = unit.payload
        dense = self.reader.dense()
        table = read_parquet(self.out, faces_key(work.shard_id), ["face_id", "index_id"])
        ids = table.column("index_id").to_numpy()
        nb = np.full((len(ids), self.k), -1, np.int64)
        sims = np.full((len(ids), self.k), -np.inf, np.float32)
        kept = self._keep(work, ids, nb, sims)
        todo = np.flatnonzero(~kept)
        emb = dense.emb[dense.positions(ids[todo])]
        for start in range(0, len(todo), BATCH):
            rows = todo[start : start + BATCH]
            nb[rows], sims[rows] = self.reader.search_ids(
                emb[start : start + BATCH], self.k, ids[rows], self.cfg.knn_candidates
            )
            progress(len(rows))
        progress(int(kept.sum()))
        key = knn_file(work.shard_id)
        self.out.write_bytes(key, parquet_bytes(knn_table(table.column("face_id"), ids, nb, sims)))
        # kept rows are complete for the previous state only; new rows for every state since
        # (merging faces that joined since into them again changes nothing): the older holds
        meta = {
            "against": work.base if kept.any() else self.manifest.fingerprint(),
            "params": [self.k, self.cfg.knn_candidates, self.cfg.nprobe],
            "generation": self.manifest.generation,
        }
        return UnitOutput({"faces": len(ids), "searched": len(todo)}, [key], meta)

    def _keep(self, work: KnnWork, ids: np.ndarray, nb: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Fill the rows of faces that the previous file already had; which rows those are."""
        kept = np.zeros(len(ids), bool)
        if work.base is None or not self.out.exists(knn_file(work.shard_id)):
            return kept
        old = read_parquet(self.out, knn_file(work.shard_id))
        old_ids = old.column("id").to_numpy()
        at = positions(pa.array(ids), pa.array(old_ids))
        kept = at >= 0
        old_nb, old_sims = _arrays(old, self.k)
        nb[kept], sims[kept] = old_nb[at[kept]], old_sims[at[kept]]
        return kept


@dataclass(frozen=True)
class KnnWork:
    shard_id: str
    base: str | None  # the index state its previous rows are complete for; None: search all


@dataclass(frozen=True)
class RefreshWork:
    bases: dict[str, str]  # shard -> the index state (fingerprint) its rows are complete for
    knn_digests: dict[str, str]  # shard -> its knn unit's digest now


class KnnRefreshStep:
    """One unit: every shard's rows brought up to date with the current index."""

    name = REFRESH_STEP
    item_name = ""
    owned_prefixes = ()

    def __init__(self, out: Store, cfg: IndexConfig, manifest: Manifest) -> None:
        self.out, self.cfg, self.manifest = out, cfg, manifest
        self.target = manifest.fingerprint()
        self.k = graph_k(cfg, manifest.total)
        self.resources = Resources(cpus=1.0, memory_gb=round(manifest.total * 1.8e-6 + 0.5, 1))

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        knn = read_markers(self.out, KnnStep.name)
        previous = done.get(REFRESH_UNIT)
        covered = previous.meta.get("covered", {}) if previous else {}
        reached = previous.meta.get("target") if previous else None
        bases = {}
        for sid in self.manifest.shards:
            marker = knn[sid]  # the knn step has just run every unit
            same = covered.get(sid) == marker.digest
            bases[sid] = reached if same and reached else str(marker.meta.get("against"))
        digests = {sid: knn[sid].digest for sid in self.manifest.shards}
        d = digest(self.name, VERSION, self.target, digests)
        return [Unit(REFRESH_UNIT, d, "refresh kNN rows", 1, RefreshWork(bases, digests))]

    def setup(self, device: str, threads: int) -> None:
        import faiss

        faiss.omp_set_num_threads(max(threads, 1))

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        work: RefreshWork = unit.payload
        stale = {sid for sid, base in work.bases.items() if base != self.target}
        stats = {"shards_checked": len(stale), "rows_refreshed": 0, "files_rewritten": 0}
        shards = sorted(work.bases)
        read = read_parquets(self.out, [knn_file(s) for s in shards])
        tables = dict(zip(shards, read, strict=True))
        if stale:
            stats.update(self._refresh(work.bases, stale, tables))
        progress(1)
        ids = np.sort(np.concatenate([t.column("id").to_numpy() for t in tables.values()]))
        self.out.write_bytes(state_key(self.target), _npy(ids))  # what the next run compares with
        for info in self.out.list(STATES_PREFIX):  # only the current state is referred to now
            if info.key != state_key(self.target):
                self.out.delete(info.key)
        meta = {"target": self.target, "covered": work.knn_digests}
        return UnitOutput(stats, [], meta)

    def _refresh(
        self, bases: dict[str, str], stale: set[str], tables: dict[str, pa.Table]
    ) -> dict[str, int]:
        reader = IndexReader(self.out, self.cfg)
        # embeddings are read only if a row must be searched again or compared densely
        dense = reader.dense(embeddings=False)
        everyone = np.sort(dense.ids)
        joined: dict[str, tuple[np.ndarray, ...]] = {}
        for base in {bases[s] for s in stale}:
            held = self._state(base)
            new = everyone if held is None else np.setdiff1d(everyone, held, assume_unique=True)
            joined[base] = _joined(tables, new)
        rows_refreshed = files = 0
        for sid in sorted(stale):
            table = tables[sid]
            ids = table.column("id").to_numpy()
            nb, sims = _arrays(table, self.k)
            new_nb, new_sims = _merge(
                reader, dense, ids, nb.copy(), sims.copy(), joined[bases[sid]], self.k
            )
            changed = ~((new_nb == nb).all(axis=1) & (new_sims == sims).all(axis=1))
            if changed.any():
                rows_refreshed += int(changed.sum())
                files += 1
                self.out.write_bytes(
                    knn_file(sid),
                    parquet_bytes(knn_table(table.column("face_id"), ids, new_nb, new_sims)),
                )
        log.info("knn-refresh: %d rows in %d files brought up to date", rows_refreshed, files)
        return {"rows_refreshed": rows_refreshed, "files_rewritten": files}

    def _state(self, fingerprint: str) -> np.ndarray | None:
        """The sorted ids the index held in a state; None when unknown."""
        try:
            return np.load(io.BytesIO(self.out.read_bytes(state_key(fingerprint))))
        except StorageError as exc:
            if exc.transient:
                raise
            # an unknown base: every face counts as joined since, which is slower, never wrong
            log.warning("index state %s is unknown; refreshing against every face", fingerprint)
            return None


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _arrays(table: pa.Table, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour ids, sims) of a graph file as (n, k) arrays; missing: -1 and -inf."""
    n = table.num_rows
    width = table.schema.field("neighbor_ids").type.list_size
    nb = table.column("neighbor_ids").combine_chunks().flatten().to_numpy().reshape(n, width)
    sims = table.column("neighbor_sims").combine_chunks().flatten()
    sims = sims.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, width)
    sims = np.where(nb >= 0, np.nan_to_num(sims, nan=-np.inf), -np.inf).astype(np.float32)
    if width >= k:  # K changes only with a full rebuild; this keeps the shapes right regardless
        return nb[:, :k].copy(), sims[:, :k].copy()
    pad = ((0, 0), (0, k - width))
    return np.pad(nb, pad, constant_values=-1), np.pad(sims, pad, constant_values=-np.inf)


def _joined(tables: dict[str, pa.Table], faces: np.ndarray) -> tuple[np.ndarray, ...]:
    """The faces that joined since a state (sorted ids), and their (x, y, sim) graph edges: x is
    a neighbour of joined face y (the reverse candidates of an IVF refresh)."""
    empty = np.zeros(0, np.int64)
    if not len(faces):
        return faces, empty, empty, np.zeros(0, np.float32)
    ys, xs, ss = [empty], [empty], [np.zeros(0, np.float32)]
    for table in tables.values():
        y = table.column("id").to_numpy()
        mine = np.isin(y, faces, assume_unique=True)
        if not mine.any():
            continue
        nb, sims = _arrays(table, table.schema.field("neighbor_ids").type.list_size)
        ys.append(np.repeat(y[mine], nb.shape[1]))
        xs.append(nb[mine].reshape(-1))
        ss.append(sims[mine].reshape(-1))
    x, y, s = np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)
    ok = (x >= 0) & np.isfinite(s)
    x, y, s = x[ok], y[ok], s[ok]
    by_x = np.argsort(x, kind="stable")  # each shard's rows then find their edges by bisection
    return faces, x[by_x], y[by_x], s[by_x]


def _merge(
    reader: IndexReader,
    dense: DenseEmbeddings,
    ids: np.ndarray,
    nb: np.ndarray,
    sims: np.ndarray,
    joined: tuple[np.ndarray, ...],
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A shard's rows with gone neighbours searched again and joined faces merged in."""
    faces, xs, ys, ss = joined
    gone = ((nb >= 0) & (dense.positions(nb) < 0)).any(axis=1)
    if gone.any():
        emb = dense.emb[dense.positions(ids[gone])]
        nb[gone], sims[gone] = reader.search_ids(emb, k, ids[gone], reader.cfg.knn_candidates)
    rows = np.flatnonzero(~gone)
    if not len(rows) or not len(faces):
        return nb, sims
    if reader.exact:
        cand_ids, cand_sims = _dense_candidates(dense, ids[rows], faces, k)
    else:
        cand_ids, cand_sims = _grouped(ids[rows], xs, ys, ss)
        some = (cand_ids >= 0).any(axis=1)  # rows no joined face points at stay as they are
        rows, cand_ids, cand_sims = rows[some], cand_ids[some], cand_sims[some]
        if not len(rows):
            return nb, sims
    all_ids = np.concatenate([nb[rows], cand_ids], axis=1)
    all_sims = np.concatenate([sims[rows], cand_sims], axis=1)
    all_ids, all_sims = _dedupe(all_ids, all_sims)
    ties = dense.ties[np.maximum(dense.positions(all_ids), 0)]
    nb[rows], sims[rows] = top_k(all_ids, all_sims, ties, k)
    return nb, sims


def _dedupe(ids: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask repeated ids in each row (a joined face already among the neighbours)."""
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, 1)
    repeat = np.zeros(sorted_ids.shape, dtype=bool)
    repeat[:, 1:] = (sorted_ids[:, 1:] == sorted_ids[:, :-1]) & (sorted_ids[:, 1:] >= 0)
    mask = np.zeros_like(repeat)
    np.put_along_axis(mask, order, repeat, 1)
    return np.where(mask, -1, ids), np.where(mask, -np.inf, sims).astype(np.float32)


def _dense_candidates(
    dense: DenseEmbeddings, row_ids: np.ndarray, joined: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact: every row against every joined face, the best k of them per row (chunked)."""
    q = dense.emb[dense.positions(row_ids)].astype(np.float64)
    j = dense.emb[dense.positions(joined)].astype(np.float64)
    q_norms, j_norms = dense.norms[dense.positions(row_ids)], dense.norms[dense.positions(joined)]
    jt = dense.ties[dense.positions(joined)]
    width = min(k, len(joined))
    out_ids = np.full((len(row_ids), width), -1, np.int64)
    out_sims = np.full((len(row_ids), width), -np.inf, np.float32)
    for s in range(0, len(row_ids), 1024):
        sims = cosines(q[s : s + 1024] @ j.T, q_norms[s : s + 1024, None], j_norms[None, :])
        sims[row_ids[s : s + 1024, None] == joined[None, :]] = -np.inf  # not itself
        cand = np.broadcast_to(joined, sims.shape)
        ties = np.broadcast_to(jt, sims.shape)
        out_ids[s : s + 1024], out_sims[s : s + 1024] = top_k(cand, sims, ties, width)
    return out_ids, out_sims


def _grouped(
    row_ids: np.ndarray, xs: np.ndarray, ys: np.ndarray, ss: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate: joined face y is a candidate of row x when x is among y's neighbours.
    ``xs`` is sorted: only the slice within this shard's id range is looked at."""
    lo, hi = np.searchsorted(xs, [row_ids.min(), row_ids.max() + 1])
    xs, ys, ss = xs[lo:hi], ys[lo:hi], ss[lo:hi]
    order = np.argsort(row_ids, kind="stable")
    at = np.clip(np.searchsorted(row_ids[order], xs), 0, len(row_ids) - 1)
    hit = row_ids[order][at] == xs
    rows, ys, ss = order[at[hit]], ys[hit], ss[hit]
    if not len(rows):
        return np.full((len(row_ids), 1), -1, np.int64), np.full(
            (len(row_ids), 1), -np.inf, np.float32
        )
    by_row = np.argsort(rows, kind="stable")
    rows, ys, ss = rows[by_row], ys[by_row], ss[by_row]
    starts = np.searchsorted(rows, rows, side="left")
    col = np.arange(len(rows)) - starts
    width = int(col.max()) + 1
    out_ids = np.full((len(row_ids), width), -1, np.int64)
    out_sims = np.full((len(row_ids), width), -np.inf, np.float32)
    out_ids[rows, col] = ys
    out_sims[rows, col] = ss
    return out_ids, out_sims
