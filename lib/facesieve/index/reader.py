"""Open a built index for search: every shard merged in memory (or the merged file), plus the
embeddings for re-ranking, read from OUT/faces on demand.

Re-ranking uses the stored embeddings rounded to float16 (``RERANK_DTYPE``): the kNN graph holds
every embedding in one process, and at 2 bytes a value 10M faces take 10 GB instead of 20. The
cosines move by 1.2e-5 RMS, 5.7e-5 at most, on LFW's real faces (``bench/rerank_precision.py``,
docs/BENCHMARKS.md): far below any threshold the rules use. Similarities of those values are
computed in float64 and rounded to float32 (``exact_sims``): the kNN graph is built in pieces
across runs (new rows, refreshed rows, dense products for small exact indexes), and one rounding
for every piece keeps an incremental graph equal to a fresh one. Ties are broken by face key
(``tie_keys``), which unlike index ids does not depend on how files were grouped into shards.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from facesieve.config import IndexConfig
from facesieve.errors import ConfigError
from facesieve.index.faiss_io import VECTOR_COLUMNS, assemble, from_bytes
from facesieve.index.manifest import Manifest, read_manifest
from facesieve.outputs import faces_key, images_key, read_parquet, read_parquets
from facesieve.schema import shard_number_of
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

RERANK_CHUNK = 256  # queries re-ranked at once: 256 x 100 candidates x 2 KB (float32) = 52 MB
RERANK_DTYPE = np.float16  # the values re-ranking compares (module docstring)
# Bound on |float32 dot product - float64 dot product| for unit vectors of 512 dimensions
# (512 roundings of at most 2^-24 relative each, on terms summing to at most 1: 3.1e-5), doubled
# for the two values compared (dividing by a candidate's norm adds two roundings of 2^-24, which
# the doubling covers): a candidate more than this below a row's k-th float32 score cannot
# be among its k best in float64
F32_SLACK = 1e-4


@dataclass(frozen=True)
class Match:
    id: int
    face_id: str
    image_id: str
    uri: str
    label: str | None
    similarity: float


def norms(vectors: np.ndarray) -> np.ndarray:
    """float64 L2 norms over the last axis. Rounded to float16, unit vectors are not quite unit
    any more (norms 1 +- 1e-4): similarities divide by these, so a face's similarity to itself
    stays 1."""
    flat = vectors.reshape(-1, vectors.shape[-1]).astype(np.float64)
    return np.sqrt(np.einsum("nd,nd->n", flat, flat)).reshape(vectors.shape[:-1])


def exact_sims(
    queries: np.ndarray, candidates: np.ndarray, cand_norms: np.ndarray | None = None
) -> np.ndarray:
    """(q, c) cosines of (q, d) queries with their own (q, c, d) candidates, float64 -> float32.
    ``cand_norms`` (q, c): ``norms(candidates)`` when the caller has them already."""
    q = queries.astype(np.float64)
    dots = np.einsum("qd,qcd->qc", q, candidates.astype(np.float64))
    c_norms = norms(candidates) if cand_norms is None else cand_norms
    return cosines(dots, norms(q)[:, None], c_norms)


def cosines(dots: np.ndarray, q_norms: np.ndarray, c_norms: np.ndarray) -> np.ndarray:
    """float64 dot products -> float32 cosines: one formula for every piece of the graph (the
    re-ranked rows here, the dense products of a refresh), so they round alike."""
    return (dots / (q_norms * c_norms)).astype(np.float32)


def shortlist(
    queries: np.ndarray,
    cand: np.ndarray,
    rows: np.ndarray,
    k: int,
    cand_norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The candidates that can be among each row's k best in float64, as (ids, -1 where
    dropped; their columns in ``cand``): scored in float32 from their gathered embeddings
    ``rows`` (q, c, d), divided by ``cand_norms`` (q, c) when given, everything within
    ``F32_SLACK`` of the row's k-th score kept. The float64 products then cover about k
    candidates per row instead of all of them, and give the same result. As wide as the widest
    row's cut (every column when nothing can be dropped)."""
    every = np.broadcast_to(np.arange(cand.shape[1]), cand.shape)
    if k >= cand.shape[1]:
        return cand, every
    scores = np.matmul(rows, queries[:, :, None])[:, :, 0]
    if cand_norms is not None:  # a query's own norm orders nothing within its row
        scores = scores / cand_norms.astype(np.float32)
    scores[cand < 0] = -np.inf
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    keep = scores >= (kth - F32_SLACK)[:, None]
    width = int(keep.sum(axis=1).max())
    if width >= cand.shape[1]:
        return cand, every
    cols = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    ids = np.take_along_axis(cand, cols, 1)
    return np.where(np.take_along_axis(keep, cols, 1), ids, -1), cols


def tie_keys(face_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A uint64 per face that orders equal similarities the same way in every run: 60 bits of
    its image id, then its face index (capped at 15) in the low 4 bits."""
    if isinstance(face_ids, pa.ChunkedArray):
        face_ids = face_ids.combine_chunks()
    if not len(face_ids):
        return np.zeros(0, np.uint64)
    # face ids are "<hex image id>#<face index>": 15 hex digits as 60 bits, in numpy
    head = pc.utf8_slice_codeunits(face_ids, 0, 15).to_numpy(zero_copy_only=False)
    digits = np.frombuffer(head.astype("S15").tobytes(), np.uint8).reshape(-1, 15)
    value = np.where(digits >= ord("a"), digits - (ord("a") - 10), digits - ord("0"))
    keys = np.zeros(len(face_ids), np.uint64)
    for column in range(15):
        keys = (keys << np.uint64(4)) | value[:, column].astype(np.uint64)
    tail = pc.struct_field(pc.extract_regex(face_ids, r"#(?P<i>[0-9]+)$"), [0])
    index = np.minimum(pc.cast(tail, pa.int64()).to_numpy(zero_copy_only=False), 15)
    return (keys << np.uint64(4)) | index.astype(np.uint64)


def top_k(
    ids: np.ndarray, sims: np.ndarray, ties: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best (id, sim) by decreasing sim then increasing tie key; -1/-inf pad.

    Wide rows are first cut to the candidates at least as good as each row's k-th best (ties
    included, so the order stays exact), then sorted: a full sort of thousands of columns per row
    was most of a graph refresh's time.
    """
    if sims.shape[1] > 4 * k:
        kth = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
        width = int((sims >= kth[:, None]).sum(axis=1).max())
        if width < sims.shape[1]:
            part = np.argpartition(-sims, width - 1, axis=1)[:, :width]
            ids = np.take_along_axis(np.broadcast_to(ids, sims.shape), part, 1)
            ties = np.take_along_axis(np.broadcast_to(ties, sims.shape), part, 1)
            sims = np.take_along_axis(sims, part, 1)
    order = np.lexsort((ties, -sims.astype(np.float64)), axis=1)[:, :k]
    got_ids = np.take_along_axis(ids, order, 1)
    got_sims = np.take_along_axis(sims, order, 1)
    got_ids = np.where(np.isfinite(got_sims), got_ids, -1)
    if got_ids.shape[1] < k:
        pad = k - got_ids.shape[1]
        got_ids = np.pad(got_ids, ((0, 0), (0, pad)), constant_values=-1)
        got_sims = np.pad(got_sims, ((0, 0), (0, pad)), constant_values=-np.inf)
    return got_ids, got_sims


class DenseEmbeddings:
    """Every indexed face's id, face_id and tie key in RAM, and its embedding as ``RERANK_DTYPE``
    (N x 1 KB).

    Used where many queries are re-ranked at once (the kNN graph): one gather per batch instead
    of one Parquet lookup per candidate. With ``embeddings=False`` the embeddings are read on
    first use of ``emb``: a graph refresh that only merges new faces into old rows needs ids and
    tie keys alone, and reading the embeddings took about 9 of its 22 s at a million faces
    (py-spy, in-process rerun).
    """

    def __init__(self, reader: IndexReader, embeddings: bool = True) -> None:
        self._reader = reader
        self.ids, face_ids, self._emb = self._read(embeddings)
        self._norms: np.ndarray | None = None
        self.face_ids = pa.chunked_array(face_ids, pa.string()).combine_chunks()
        self.ties = tie_keys(self.face_ids)
        self._order = np.argsort(self.ids, kind="stable")
        self._sorted = self.ids[self._order]

    @property
    def emb(self) -> np.ndarray:
        """(N, dim) ``RERANK_DTYPE`` embeddings in ``ids`` order, read on first use."""
        if self._emb is None:
            ids, _, emb = self._read(True)
            if not np.array_equal(ids, self.ids):
                raise ConfigError(
                    f"faces under {self._reader.out.root_uri} changed while the index was read"
                )
            self._emb = emb
        return self._emb

    @property
    def norms(self) -> np.ndarray:
        """(N,) float64 ``norms`` of ``emb``, computed on first use (8 bytes a face)."""
        if self._norms is None:
            emb, step = self.emb, 1 << 14
            self._norms = np.concatenate(
                [norms(emb[s : s + step]) for s in range(0, len(emb), step)] or [np.zeros(0)]
            )
        return self._norms

    def _read(self, embeddings: bool) -> tuple[np.ndarray, list[pa.Array], np.ndarray | None]:
        """(index ids, face id arrays, embeddings or None) of every faces shard in the index, in
        shard order. Embeddings are copied into one array as they come (concatenating per-shard
        arrays copied the 2 GB of a million faces again)."""
        m = self._reader.manifest
        keys = [faces_key(e.shard_id) for e in sorted(m.shards.values(), key=lambda e: e.shard_id)]
        total = sum(e.count for e in m.shards.values())
        emb = np.empty((total, m.dim), RERANK_DTYPE) if embeddings else None
        columns = VECTOR_COLUMNS if embeddings else ["face_id", "index_id"]
        ids, face_ids, at = [], [], 0
        for table in read_parquets(self._reader.out, keys, columns):  # nothing else cached
            n = table.num_rows
            if at + n > total:
                break
            if emb is not None:
                flat = table.column("embedding").combine_chunks().flatten()
                emb[at : at + n] = flat.to_numpy(zero_copy_only=False).reshape(n, -1)
            ids.append(table.column("index_id").to_numpy().astype(np.int64))
            face_ids.append(table.column("face_id"))
            at += n
        if at != total:  # faces rewritten after the index was filled
            raise ConfigError(
                f"the index under {self._reader.out.root_uri} lists other faces than faces/ "
                "holds: run `facesieve index` again"
            )
        return (np.concatenate(ids) if ids else np.zeros(0, np.int64)), face_ids, emb

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id; -1 where the index does not hold it."""
        ids = np.asarray(ids, np.int64)
        at = np.clip(np.searchsorted(self._sorted, ids), 0, max(len(self._sorted) - 1, 0))
        if not len(self._sorted):
            return np.full(ids.shape, -1, np.int64)
        return np.where(self._sorted[at] == ids, self._order[at], -1)


class IndexReader:
    """Approximate search over the index, re-ranked by cosine on the stored embeddings (float16)."""

    def __init__(self, out: Store, cfg: IndexConfig, threads: int = 1) -> None:
        """``threads``: how many re-ranking chunks run at once (with the dense embeddings)."""
        manifest = read_manifest(out)
        if manifest is None:
            raise ConfigError(f"no index under {out.root_uri}: run `facesieve index` first")
        self.out, self.cfg, self.manifest, self.threads = out, cfg, manifest, threads
        self._index: faiss.Index | None = None
        self._by_number = manifest.by_number()
        self._tables: dict[str, pa.Table] = {}
        self._uris: dict[str, dict[str, str]] = {}
        self._dense: DenseEmbeddings | None = None

    @property
    def exact(self) -> bool:
        """Whether search is exhaustive (a flat index): then results are exact top-k."""
        return not self.manifest.params.get("nlist")

    @property
    def index(self) -> faiss.Index:
        """The FAISS index, assembled on first use (a graph refresh often needs none)."""
        if self._index is None:
            self._index = self._load(self.manifest)
            nprobe = self.cfg.nprobe or self.manifest.params.get("nprobe", 0)
            if self.manifest.params.get("nlist") and nprobe:
                faiss.ParameterSpace().set_index_parameter(self._index, "nprobe", int(nprobe))
        return self._index

    def dense(self, embeddings: bool = True) -> DenseEmbeddings:
        """All embeddings in RAM (loaded once); re-ranking then needs no Parquet reads. With
        ``embeddings=False``, ids and tie keys now and the embeddings on first use."""
        if self._dense is None:
            self._dense = DenseEmbeddings(self, embeddings)
        return self._dense

    def _load(self, m: Manifest) -> faiss.Index:
        if m.merged and m.merged.get("fingerprint") == m.fingerprint():
            return from_bytes(self.out.read_bytes(m.merged["file"]))
        index = from_bytes(self.out.read_bytes(m.trained_file))
        assemble(index, (self.out.read_bytes(e.file) for e in m.shards.values()))
        return index

    def table(self, shard_id: str) -> pa.Table:
        """face_id, image_id, label, embedding, index_id of one faces shard (cached)."""
        if shard_id not in self._tables:
            cols = ["face_id", "image_id", "label", "embedding", "index_id"]
            self._tables[shard_id] = read_parquet(self.out, faces_key(shard_id), cols)
        return self._tables[shard_id]

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Stored embeddings of global ids as re-ranking compares them, (len(ids), 512)
        ``RERANK_DTYPE``."""
        if self._dense is not None:
            return self._dense.emb[np.maximum(self._dense.positions(ids), 0)]
        numbers = shard_number_of(ids)
        out = np.zeros((len(ids), self.manifest.dim), RERANK_DTYPE)
        for number in np.unique(numbers):
            sel = numbers == number
            table = self.table(self._by_number[int(number)].shard_id)
            rows = pc.index_in(pa.array(np.asarray(ids)[sel]), value_set=table.column("index_id"))
            col = table.column("embedding").take(rows)
            flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            out[sel] = flat.reshape(-1, self.manifest.dim)
        return out

    def candidates(self, queries: np.ndarray, k: int, n: int = 0) -> np.ndarray:
        """The index's ``n`` approximate candidates per query for re-ranking, by default
        max(100, ``index.candidates`` x k)."""
        n = min(n or max(k * self.cfg.candidates, 100), max(self.index.ntotal, 1))
        return self.index.search(np.ascontiguousarray(queries, dtype=np.float32), n)[1]

    def search_ids(
        self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None, n_candidates: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, similarities), each (q, k): the index's candidates (``candidates()``, ``n`` =
        ``n_candidates``) re-ranked by exact cosine.

        ``exclude`` (one id per query) drops that id from its query's results (a face's own entry
        in the kNN graph). Missing results have id -1 and similarity -inf. With the dense
        embeddings loaded, equal similarities are ordered by tie key. Re-ranking runs in chunks
        of ``RERANK_CHUNK`` queries.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        cand = self.candidates(queries, k, n_candidates)
        out_ids = np.full((len(queries), k), -1, np.int64)
        out_sims = np.full((len(queries), k), -np.inf, np.float32)

        def rerank(c0: int) -> None:
            c, q = cand[c0 : c0 + RERANK_CHUNK], queries[c0 : c0 + RERANK_CHUNK]
            valid = c >= 0
            if exclude is not None:
                valid &= c != exclude[c0 : c0 + RERANK_CHUNK, None]
            c = np.where(valid, c, -1)
            safe = np.where(valid, c, c[valid][0] if valid.any() else 0)
            dense = self._dense
            # rows of the dense arrays, looked up once (a binary search per candidate)
            at = np.maximum(dense.positions(safe), 0) if dense is not None else None
            if at is not None:
                # float16 products have no fast path in numpy: each distinct candidate of the
                # chunk is widened to float32 once (a shard's faces share most candidates)
                distinct, inverse = np.unique(at, return_inverse=True)
                rows = dense.emb[distinct].astype(np.float32)[inverse.reshape(at.shape)]
                c_norms = dense.norms[at]
            else:
                rows = self._rows(safe).astype(np.float32)
                c_norms = norms(rows)
            if c.shape[1] > 2 * k:  # wide rows: float64 products for the shortlist only
                c, cols = shortlist(q, c, rows, k, c_norms)
                rows = rows[np.arange(len(rows))[:, None], cols]  # take_along_axis: 8.7x slower
                c_norms = np.take_along_axis(c_norms, cols, 1)
                at = np.take_along_axis(at, cols, 1) if at is not None else None
                valid = c >= 0
            sims = exact_sims(q, rows, c_norms)
            sims[~valid] = -np.inf
            ties = dense.ties[at] if at is not None else np.zeros(c.shape, np.uint64)
            out_ids[c0 : c0 + len(c)], out_sims[c0 : c0 + len(c)] = top_k(c, sims, ties, k)

        if self._dense is not None:
            _ = self._dense.norms  # computed once here, not by each thread that finds none
        starts = range(0, len(queries), RERANK_CHUNK)
        if self.threads > 1 and len(starts) > 1 and self._dense is not None:
            # numpy's gathers and products release the GIL: chunks run side by side
            with ThreadPoolExecutor(self.threads, thread_name_prefix="rerank") as pool:
                list(pool.map(rerank, starts))
        else:
            for c0 in starts:
                rerank(c0)
        return out_ids, out_sims

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """The stored embeddings of a (q, c) block of ids, (q, c, dim)."""
        return self.embeddings(ids.reshape(-1)).reshape(*ids.shape, -1)

    def search(self, queries: np.ndarray, k: int) -> list[list[Match]]:
        """Top-k matches per query, with face ids, labels and uris."""
        ids, sims = self.search_ids(queries, k)
        return [
            [
                self._match(int(i), float(s))
                for i, s in zip(row_ids, row_sims, strict=True)
                if i >= 0
            ]
            for row_ids, row_sims in zip(ids, sims, strict=True)
        ]

    def uris(self, shard_id: str) -> dict[str, str]:
        """image_id -> uri for one shard, from its images table (cached)."""
        if shard_id not in self._uris:
            table = read_parquet(self.out, images_key(shard_id), ["image_id", "uri"])
            self._uris[shard_id] = dict(
                zip(*(table.column(c).to_pylist() for c in ("image_id", "uri")), strict=True)
            )
        return self._uris[shard_id]

    def _match(self, gid: int, sim: float) -> Match:
        shard_id = self._by_number[int(shard_number_of(np.array([gid]))[0])].shard_id
        table = self.table(shard_id)
        row = table.filter(pc.equal(table.column("index_id"), gid)).slice(0, 1).to_pylist()[0]
        uri = self.uris(shard_id)[row["image_id"]]
        return Match(gid, row["face_id"], row["image_id"], uri, row["label"], round(sim, 5))
