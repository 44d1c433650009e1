"""``OUT/index/manifest.json``: what the index holds and how ids map back to faces.

Id scheme: ``id = shard_number * 2**32 + row``, where ``row`` is the row of the face in
``faces/<shard_id>.parquet`` and ``shard_number`` is given to a faces shard when it first enters
the index (sorted shard-id order at a full build, then appended). Ids never change while a shard's
faces file is unchanged, so they are stable across reruns and incremental adds.

Each training produces a *generation*: ``index/gen-<digest>/`` holds the trained empty index and
one filled index file per faces shard. The manifest is written last and names the generation in
use, so a crash never mixes shards trained differently.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from facesieve.errors import StorageError
from facesieve.storage.base import Store

MANIFEST_KEY = "index/manifest.json"
SHARD_SHIFT = 32
ID_SCHEME = "id = shard_number * 2**32 + row of faces/<shard_id>.parquet"


def make_ids(shard_number: int, n: int) -> np.ndarray:
    return (np.int64(shard_number) << SHARD_SHIFT) + np.arange(n, dtype=np.int64)


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shard_numbers, rows) of global ids."""
    ids = np.asarray(ids, np.int64)
    return ids >> SHARD_SHIFT, ids & ((1 << SHARD_SHIFT) - 1)


@dataclass
class ShardEntry:
    shard_id: str
    number: int
    file: str  # index shard file, relative to OUT
    count: int
    faces_tag: str  # changes when the embed stage rewrites faces/<shard_id>.parquet


@dataclass
class Manifest:
    generation: str
    factory: str
    params: dict[str, Any]
    dim: int
    embed_fingerprint: str  # the embed config+models the vectors came from; never mixed
    trained_on: int  # vectors in the index when it was trained (drives retraining)
    trained_file: str
    shards: dict[str, ShardEntry] = field(default_factory=dict)
    merged: dict[str, Any] | None = None
    metric: str = "inner_product"
    id_scheme: str = ID_SCHEME
    version: int = 1
    updated_at: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(e.count for e in self.shards.values())

    def fingerprint(self) -> str:
        """Changes whenever the set of indexed vectors or their training changes."""
        import hashlib

        parts = [self.generation] + [
            f"{s}:{e.number}:{e.faces_tag}" for s, e in sorted(self.shards.items())
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def by_number(self) -> dict[int, ShardEntry]:
        return {e.number: e for e in self.shards.values()}

    def to_json(self) -> bytes:
        data = asdict(self)
        data["total"] = self.total
        data["fingerprint"] = self.fingerprint()
        return json.dumps(data, indent=1).encode()


def read_manifest(store: Store) -> Manifest | None:
    """The manifest, or None when no index was built yet (a damaged one raises)."""
    if not store.exists(MANIFEST_KEY):
        return None
    try:
        data = json.loads(store.read_bytes(MANIFEST_KEY))
        data.pop("total", None)
        data.pop("fingerprint", None)
        data["shards"] = {k: ShardEntry(**v) for k, v in data["shards"].items()}
        return Manifest(**data)
    except (ValueError, TypeError, KeyError) as exc:
        raise StorageError(
            f"{store.uri(MANIFEST_KEY)} is damaged ({exc}); delete OUT/index to rebuild"
        ) from exc


def write_manifest(store: Store, manifest: Manifest) -> None:
    manifest.updated_at = round(time.time(), 3)
    store.write_bytes(MANIFEST_KEY, manifest.to_json())
