"""FAISS indexes and index shards to and from bytes (so they live in any Store, S3 included).

An IVF index shard holds only its vectors' standalone codes (``sa_encode``: list number + PQ
code) and ids, about m + 10 bytes per vector; serialising a filled copy of the whole index
instead would repeat the coarse quantizer (8 MB at 4,096 lists of 512 floats) in every shard.
Flat indexes have no standalone codec, so their shards are serialised ``IDMap2,Flat`` indexes.
"""

from __future__ import annotations

import io

import faiss
import numpy as np
import pyarrow as pa

from facesieve.outputs import faces_key, read_parquet
from facesieve.storage.base import Store


def to_bytes(index: faiss.Index) -> bytes:
    return faiss.serialize_index(index).tobytes()


def from_bytes(data: bytes) -> faiss.Index:
    # Plain deserialisation: FAISS 1.15 segfaults searching merged indexes opened with IO_FLAG_MMAP.
    return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))


def is_ivf(index: faiss.Index) -> bool:
    return faiss.try_extract_index_ivf(index) is not None


def shard_suffix(index: faiss.Index) -> str:
    return ".codes.npz" if is_ivf(index) else ".faiss"


def encode_shard(trained: faiss.Index, emb: np.ndarray, ids: np.ndarray) -> bytes:
    """The bytes of one index shard: codes + ids (IVF) or a filled flat index."""
    if is_ivf(trained):
        buf = io.BytesIO()
        np.savez(buf, ids=ids, codes=trained.sa_encode(emb))
        return buf.getvalue()
    flat = from_bytes(to_bytes(trained))  # clone_index turns IndexFlatIP into a plain IndexFlat
    flat.add_with_ids(emb, ids)
    return to_bytes(flat)


def add_shard(index: faiss.Index, data: bytes) -> int:
    """Add an index shard's vectors to ``index`` (the trained index or one being assembled)."""
    if not is_ivf(index):
        shard = from_bytes(data)
        count = int(shard.ntotal)  # merge_from moves the vectors: the source is empty afterwards
        index.merge_from(shard, 0)
        return count
    with np.load(io.BytesIO(data)) as npz:
        ids, codes = npz["ids"], npz["codes"]
    ivf = faiss.try_extract_index_ivf(index)
    ivf.add_sa_codes(codes, ids)
    index.ntotal = ivf.ntotal  # a pre-transform (OPQ) wrapper does not see codes added below it
    return len(ids)


VECTOR_COLUMNS = ["face_id", "embedding", "index_id"]


def vectors(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (n, 512) float32 C-contiguous, as FAISS needs; index ids (n,) int64)."""
    flat = table.column("embedding").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    dim = table.schema.field("embedding").type.list_size
    emb = np.ascontiguousarray(flat.reshape(-1, dim), dtype=np.float32)
    return emb, table.column("index_id").to_numpy().astype(np.int64)


def read_vectors(store: Store, shard_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The vectors and ids of one faces shard (``vectors``)."""
    return vectors(read_parquet(store, faces_key(shard_id), ["embedding", "index_id"]))
