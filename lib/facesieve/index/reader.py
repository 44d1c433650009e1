"""Open a built index for search: every shard merged in memory (or the merged file), plus the
exact embeddings for re-ranking, read from OUT/faces on demand."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.config import IndexConfig
from facesieve.errors import ConfigError
from facesieve.index.faiss_io import add_shard, faces_key, from_bytes, read_embeddings
from facesieve.index.manifest import Manifest, make_ids, read_manifest, split_ids
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

RERANK_CHUNK = 256  # queries re-ranked at once: 256 x 100 candidates x 2 KB = 50 MB


@dataclass(frozen=True)
class Match:
    id: int
    face_id: str
    image_id: str
    uri: str
    label: str | None
    similarity: float


class DenseEmbeddings:
    """Every indexed face's id, face_id and embedding in RAM (N x 2 KB), in (shard, row) order.

    Used where many queries are re-ranked at once (the kNN graph, batch search): one gather per
    batch instead of one Parquet lookup per candidate.
    """

    def __init__(self, reader: IndexReader) -> None:
        entries = sorted(reader.manifest.shards.values(), key=lambda e: e.number)
        self.ids = np.concatenate([make_ids(e.number, e.count) for e in entries])
        self.emb = np.concatenate([read_embeddings(reader.out, e.shard_id) for e in entries])
        self.face_ids = pa.chunked_array(
            [reader.table(e.number).column("face_id") for e in entries]
        ).combine_chunks()
        self._starts = np.full(max(e.number for e in entries) + 1, -1, np.int64)
        offset = 0
        for e in entries:
            self._starts[e.number] = offset
            offset += e.count

    def positions(self, ids: np.ndarray) -> np.ndarray:
        numbers, rows = split_ids(ids)
        return self._starts[numbers] + rows


class IndexReader:
    """Approximate search over the index, re-ranked with exact cosine on the stored embeddings."""

    def __init__(self, out: Store, cfg: IndexConfig) -> None:
        manifest = read_manifest(out)
        if manifest is None:
            raise ConfigError(f"no index under {out.root_uri}: run `facesieve index` first")
        self.out, self.cfg, self.manifest = out, cfg, manifest
        self.index = self._load(manifest)
        nprobe = cfg.nprobe or manifest.params.get("nprobe", 0)
        if manifest.params.get("nlist") and nprobe:
            faiss.ParameterSpace().set_index_parameter(self.index, "nprobe", int(nprobe))
        self._by_number = manifest.by_number()
        self._tables: dict[int, pa.Table] = {}
        self._uris: dict[int, dict[str, str]] = {}
        self._dense: DenseEmbeddings | None = None

    def dense(self) -> DenseEmbeddings:
        """All embeddings in RAM (loaded once); re-ranking then needs no Parquet reads."""
        if self._dense is None:
            self._dense = DenseEmbeddings(self)
        return self._dense

    def _load(self, m: Manifest) -> faiss.Index:
        if m.merged and m.merged.get("fingerprint") == m.fingerprint():
            return from_bytes(self.out.read_bytes(m.merged["file"]))
        index = from_bytes(self.out.read_bytes(m.trained_file))
        for entry in m.shards.values():
            add_shard(index, self.out.read_bytes(entry.file))
        return index

    def table(self, number: int) -> pa.Table:
        """face_id, image_id, label, embedding of one faces shard (cached)."""
        if number not in self._tables:
            entry = self._by_number[number]
            data = self.out.read_bytes(faces_key(entry.shard_id))
            cols = ["face_id", "image_id", "label", "embedding"]
            self._tables[number] = pq.read_table(io.BytesIO(data), columns=cols)
        return self._tables[number]

    def embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Exact stored embeddings of global ids, (len(ids), 512)."""
        if self._dense is not None:
            return self._dense.emb[self._dense.positions(ids)]
        numbers, rows = split_ids(ids)
        out = np.zeros((len(ids), self.manifest.dim), np.float32)
        for number in np.unique(numbers):
            sel = numbers == number
            col = self.table(int(number)).column("embedding").take(pa.array(rows[sel]))
            flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            out[sel] = flat.reshape(-1, self.manifest.dim)
        return out

    def search_ids(
        self, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, similarities), each (q, k): the index's candidates re-ranked by exact cosine.

        ``exclude`` (one id per query) drops that id from its query's results (a face's own entry
        in the kNN graph). Missing results have id -1 and similarity -inf. Re-ranking runs in
        chunks of ``RERANK_CHUNK`` queries so the gathered candidate block stays ~50 MB.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n_cand = min(max(k * self.cfg.candidates, 100), max(self.index.ntotal, 1))
        _, cand = self.index.search(queries, n_cand)
        out_ids = np.full((len(queries), k), -1, np.int64)
        out_sims = np.full((len(queries), k), -np.inf, np.float32)
        for c0 in range(0, len(queries), RERANK_CHUNK):
            c, q = cand[c0 : c0 + RERANK_CHUNK], queries[c0 : c0 + RERANK_CHUNK]
            valid = c >= 0
            if exclude is not None:
                valid &= c != exclude[c0 : c0 + RERANK_CHUNK, None]
            emb = self.embeddings(np.where(valid, c, c[valid][0] if valid.any() else 0).reshape(-1))
            sims = np.einsum("qd,qcd->qc", q, emb.reshape(*c.shape, -1))
            sims[~valid] = -np.inf
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
            got = np.take_along_axis(sims, top, axis=1)
            found = np.isfinite(got)
            out_ids[c0 : c0 + len(c), : top.shape[1]] = np.where(
                found, np.take_along_axis(c, top, axis=1), -1
            )
            out_sims[c0 : c0 + len(c), : top.shape[1]] = got
        return out_ids, out_sims

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

    def uris(self, number: int) -> dict[str, str]:
        """image_id -> uri for one shard, from its images table (cached)."""
        if number not in self._uris:
            key = f"images/{self._by_number[number].shard_id}.parquet"
            table = pq.read_table(io.BytesIO(self.out.read_bytes(key)), columns=["image_id", "uri"])
            self._uris[number] = dict(
                zip(*(table.column(c).to_pylist() for c in ("image_id", "uri")), strict=True)
            )
        return self._uris[number]

    def _match(self, gid: int, sim: float) -> Match:
        numbers, rows = split_ids(np.array([gid]))
        number = int(numbers[0])
        row = self.table(number).slice(int(rows[0]), 1).to_pylist()[0]
        uri = self.uris(number)[row["image_id"]]
        return Match(gid, row["face_id"], row["image_id"], uri, row["label"], round(sim, 5))
