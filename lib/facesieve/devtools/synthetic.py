"""Synthetic face embeddings and embed outputs, for index tests and benchmarks at sizes no real
dataset here reaches.

Identities are points on the unit sphere; each face is its identity's centre plus isotropic noise,
renormalised. Three knobs are calibrated against real embeddings (``calibrate``): the noise level
sets the mean same-identity cosine, a shared low-rank component spreads the different-identity
cosines, and a common offset sets their mean. The real index code then runs over Parquet files and
done-markers exactly as `facesieve embed` writes them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from facesieve import schema
from facesieve.outputs import faces_key, images_key, parquet_bytes
from facesieve.schema import EMBEDDING_DIM
from facesieve.storage.base import Store
from facesieve.work import Marker, digest, write_marker

DIM = EMBEDDING_DIM


@dataclass(frozen=True)
class SphereModel:
    noise: float = 0.9  # per-face noise scale: same-identity cosine ~ 1 / (1 + noise^2)
    shared: float = 0.0  # weight of a shared rank-16 component: spreads different-identity cosines
    offset: float = 0.0  # weight of a common direction: raises their mean
    rank: int = 16
    seed: int = 0


def _basis(model: SphereModel) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(model.seed + 1_000_003)
    w = np.linalg.qr(rng.normal(size=(DIM, model.rank)))[0].astype(np.float32)
    common = rng.normal(size=DIM).astype(np.float32)
    return w, common / np.linalg.norm(common)


def _normalise(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def centres(model: SphereModel, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, common = _basis(model)
    u = rng.normal(size=(n, DIM)).astype(np.float32) / np.sqrt(DIM)
    v = rng.normal(size=(n, model.rank)).astype(np.float32) / np.sqrt(model.rank)
    return _normalise(u + model.shared * (v @ w.T) + model.offset * common)


def faces_of(model: SphereModel, centre_rows: np.ndarray, seed: int) -> np.ndarray:
    """One face per given centre row (rows repeat for identities with several faces)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=centre_rows.shape).astype(np.float32) / np.sqrt(DIM)
    scale = model.noise * np.exp(0.25 * rng.normal(size=(len(centre_rows), 1))).astype(np.float32)
    return _normalise(centre_rows + scale * noise)


CHUNK = 100_000  # faces drawn at once
# cosine statistics of the LFW embeddings' subject faces (docs/BENCHMARKS.md, "Index"): what the
# benchmarks' synthetic faces are calibrated on
LFW_COSINE_STATS = {
    "intra_mean": 0.611, "intra_std": 0.119, "inter_mean": 0.007, "inter_std": 0.067,
}  # fmt: skip


def identity_labels(model: SphereModel, n_faces: int, mean_size: int = 20) -> np.ndarray:
    """The identity of each face; identities hold 5..2*mean_size-5 consecutive faces."""
    rng = np.random.default_rng(model.seed)
    sizes = rng.integers(5, 2 * mean_size - 4, size=n_faces // 5 + 1)
    return np.repeat(np.arange(len(sizes)), sizes)[:n_faces]


def identity_chunks(model: SphereModel, labels: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, embeddings) of ``labels``'s faces, ``CHUNK`` rows at a time: ten million
    faces never need their 20 GB at once."""
    c = centres(model, int(labels.max()) + 1, model.seed)
    for start in range(0, len(labels), CHUNK):
        yield start, faces_of(model, c[labels[start : start + CHUNK]], model.seed + start + 1)


def identities(
    model: SphereModel, n_faces: int, mean_size: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings (n_faces, 512), identity per face); identities hold 5..2*mean_size-5 faces."""
    labels = identity_labels(model, n_faces, mean_size)
    out = np.empty((n_faces, DIM), np.float32)
    for start, emb in identity_chunks(model, labels):
        out[start : start + len(emb)] = emb
    return out, labels


def cosine_stats(
    emb: np.ndarray, labels: np.ndarray, pairs: int = 20_000, seed: int = 0
) -> dict[str, float]:
    """Mean and std of same-identity and different-identity cosines over random pairs."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(emb), pairs), rng.integers(0, len(emb), pairs)
    inter = (emb[a] * emb[b]).sum(1)[labels[a] != labels[b]]
    same = []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for group in np.split(order, bounds):
        if len(group) >= 2:
            i, j = rng.choice(group, 2, replace=False)
            same.append(float(emb[i] @ emb[j]))
        if len(same) >= pairs // 4:
            break
    same_arr = np.array(same)
    return {
        "intra_mean": float(same_arr.mean()), "intra_std": float(same_arr.std()),
        "inter_mean": float(inter.mean()), "inter_std": float(inter.std()),
    }  # fmt: skip


def calibrate(target: dict[str, float], seed: int = 0) -> SphereModel:
    """The model whose cosine statistics come closest to ``target`` (coarse grid, then noise)."""
    best, best_err = SphereModel(seed=seed), np.inf
    for shared in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0):
        for offset in (0.0, 0.1, 0.2, 0.3, 0.5):
            model = SphereModel(1.0, shared, offset, seed=seed)
            c = centres(model, 3000, seed + 7)
            rows = np.random.default_rng(seed).integers(0, 3000, (4000, 2))
            cos = (c[rows[:, 0]] * c[rows[:, 1]]).sum(1)
            # sample cosines shrink by the same-identity factor relative to centre cosines
            err = abs(cos.mean() * target["intra_mean"] - target["inter_mean"]) + abs(
                cos.std() * target["intra_mean"] - target["inter_std"]
            )
            if err < best_err:
                best, best_err = model, err
    noise = float(np.sqrt(max(1.0 / max(target["intra_mean"], 1e-3) - 1.0, 1e-3)))
    return SphereModel(noise, best.shared, best.offset, best.rank, seed)


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    """A 2-D float32 array as an Arrow fixed-size-list column."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), values.shape[1])


def write_embed_output(
    out: Store, emb: np.ndarray, labels: np.ndarray, shard_size: int = 1000, first_part: int = 0
) -> list[str]:
    """Write ``faces/`` and ``images/`` shards and embed markers as `facesieve embed` would.

    Shards are numbered from ``first_part``, so later calls can add shards beside earlier ones;
    the shard number is also the high bits of the faces' index ids, as the ledger would give.
    Writing a part again with other vectors changes its marker's digest, like a rewritten shard.
    """
    shard_ids = []
    offset = first_part * shard_size
    for part, begin in enumerate(range(0, len(emb), shard_size), start=first_part):
        start, stop = offset + begin, offset + min(begin + shard_size, len(emb))
        n = stop - start
        shard_id = schema.stable_id(f"synthetic://part-{part}")
        image_ids = [schema.stable_id(f"synthetic://{i}") for i in range(start, stop)]
        label = [f"id{int(v)}" for v in labels[begin : begin + n]]
        faces = {
            "face_id": [f"{i}#0" for i in image_ids], "image_id": image_ids, "label": label,
            "face_index": np.zeros(n, np.int32), "bbox": _fixed(np.zeros((n, 4))),
            "landmarks": _fixed(np.zeros((n, 10))), "det_score": np.ones(n, np.float32),
            "face_px": np.full(n, 100, np.float32), "sharpness": np.full(n, 100, np.float32),
            "yaw": np.zeros(n, np.float32), "embedding": _fixed(emb[begin : begin + n]),
            "model": ["synthetic"] * n,
            "index_id": [schema.index_id(part, slot, 0) for slot in range(n)],
        }  # fmt: skip
        images = {
            "image_id": image_ids, "shard_id": [shard_id] * n,
            "uri": [f"synthetic://{i}.jpg" for i in range(start, stop)], "label": label,
            "width": np.full(n, 112, np.int32), "height": np.full(n, 112, np.int32),
            "bytes": np.zeros(n, np.int64), "sha256": [None] * n, "status": ["ok"] * n,
            "error": [None] * n, "n_faces": np.ones(n, np.int32), "photo_desc": [None] * n,
            "source_tag": ["0"] * n,
        }  # fmt: skip
        keys = [faces_key(shard_id), images_key(shard_id)]
        out.write_bytes(keys[0], parquet_bytes(_table(schema.FACES, faces)))
        out.write_bytes(keys[1], parquet_bytes(_table(schema.IMAGES, images)))
        stats = {"images": n, "faces": n, "bytes": 0, "status": {"ok": n}, "seconds": 0.0}
        uri = f"synthetic://part-{part}"
        meta = {"fingerprint": "synthetic", "number": part}
        d = digest("synthetic", part, float(emb[begin : begin + n].sum()), n)
        write_marker(out, Marker("embed", shard_id, uri, d, stats, keys, meta))
        shard_ids.append(shard_id)
    return shard_ids


def _table(arrow_schema: pa.Schema, columns: dict[str, object]) -> pa.Table:
    arrays = [pa.array(columns[f.name], type=f.type) if not isinstance(columns[f.name], pa.Array)
              else columns[f.name] for f in arrow_schema]  # fmt: skip
    return pa.Table.from_arrays(arrays, schema=arrow_schema)
