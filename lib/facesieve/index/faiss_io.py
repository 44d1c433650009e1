"""FAISS indexes and index shards to and from bytes (so they live in any Store, S3 included).

An IVF index shard holds only its vectors' standalone codes (``sa_encode``: list number + PQ
code) and ids, about m + 10 bytes per vector; serialising a filled copy of the whole index
instead would repeat the coarse quantizer (8 MB at 4,096 lists of 512 floats) in every shard.
Flat indexes have no standalone codec, so their shards are serialised ``IDMap2,Flat`` indexes.

Fast-scan IVF indexes (``PQ..x4fs``) keep each list's codes interleaved in blocks of 32 for SIMD
lookups; FAISS's ``add_sa_codes`` copies standalone codes in as they are, which such lists cannot
read (every search then misses), so ``add_codes`` packs them block by block with the index's own
code packer. Shards are assembled in one pass (``assemble``) so each list is packed once.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

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


def assemble(index: faiss.Index, shards: Iterable[bytes]) -> int:
    """Add the vectors of every shard to ``index`` (the trained index or one being assembled);
    how many were added."""
    if not is_ivf(index):
        count = 0
        for data in shards:
            shard = from_bytes(data)
            count += int(shard.ntotal)  # merge_from moves the vectors: the source is empty after
            index.merge_from(shard, 0)
        return count
    ids, codes = [], []
    for data in shards:
        with np.load(io.BytesIO(data)) as npz:
            ids.append(npz["ids"])
            codes.append(npz["codes"])
    if not ids:
        return 0
    add_codes(index, np.concatenate(ids), np.concatenate(codes))
    return sum(len(i) for i in ids)


def add_codes(index: faiss.Index, ids: np.ndarray, codes: np.ndarray) -> None:
    """Add standalone codes (``sa_encode``: list number, then the PQ code) under ``ids``."""
    ivf = faiss.downcast_index(faiss.try_extract_index_ivf(index))
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if not isinstance(ivf, faiss.IndexIVFFastScan):
        ivf.add_sa_codes(np.ascontiguousarray(codes), ids)
    elif len(ids):
        _add_packed(ivf, ids, np.ascontiguousarray(codes, dtype=np.uint8))
    index.ntotal = ivf.ntotal  # a pre-transform (OPQ) wrapper does not see codes added below it


def _add_packed(ivf: faiss.IndexIVFFastScan, ids: np.ndarray, codes: np.ndarray) -> None:
    """Fast-scan lists: each list's codes packed into blocks by the index's packer, then
    appended (``add_entries`` re-packs them itself when a list's last block is partly full)."""
    coarse = ivf.coarse_code_size()
    lists = np.zeros(len(ids), np.int64)
    for byte in range(coarse):  # the list number, little-endian, in the first bytes
        lists |= codes[:, byte].astype(np.int64) << (8 * byte)
    pq = codes[:, coarse:]
    packer = ivf.get_CodePacker()
    per_block, block_size = packer.nvec, packer.block_size
    invlists = faiss.downcast_InvertedLists(ivf.invlists)
    order = np.argsort(lists, kind="stable")
    bounds = np.searchsorted(lists[order], np.arange(ivf.nlist + 1))
    for number in np.flatnonzero(np.diff(bounds)):
        rows = order[bounds[number] : bounds[number + 1]]
        blocks = -(-len(rows) // per_block)
        flat = np.zeros((blocks * per_block, packer.code_size), np.uint8)
        flat[: len(rows)] = pq[rows]
        packed = np.zeros(blocks * block_size, np.uint8)
        for block in range(blocks):
            packer.pack_all(
                faiss.swig_ptr(flat[block * per_block :]),
                faiss.swig_ptr(packed[block * block_size :]),
            )
        list_ids = np.ascontiguousarray(ids[rows])
        invlists.add_entries(
            int(number), len(rows), faiss.swig_ptr(list_ids), faiss.swig_ptr(packed)
        )
    ivf.ntotal += len(ids)


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
