"""``OUT/index/manifest.json``: what the index holds, written after the fill step succeeds.

Ids are the faces' ``index_id`` (``schema.index_id``: shard number << 32 | slot << 10 | face
index), assigned when a face is embedded and never reused for another face, so they are stable
across reruns, incremental adds and retraining.

Each training produces a *generation*: ``index/gen-<digest>/`` holds the trained empty index and
one filled index file per faces shard. The manifest names the generation in use and every shard
file with its face count; search reads only the manifest and the files it names.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from facesieve.errors import StorageError
from facesieve.storage.base import Store
from facesieve.work import digest

MANIFEST_KEY = "index/manifest.json"
ID_SCHEME = "faces.index_id = shard_number << 32 | slot << 10 | face_index"


@dataclass
class ShardEntry:
    shard_id: str
    number: int  # the high bits of its faces' ids
    file: str  # index shard file, relative to OUT
    count: int
    digest: str  # the fill unit's digest: changes when the shard's faces or the training do


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
    version: int = 2
    updated_at: float = 0.0

    @property
    def total(self) -> int:
        return sum(e.count for e in self.shards.values())

    def fingerprint(self) -> str:
        """Changes whenever the set of indexed vectors or their training changes."""
        return digest(self.generation, sorted((s, e.digest) for s, e in self.shards.items()))

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
            f"{store.uri(MANIFEST_KEY)} is damaged or of an older version ({exc}); "
            "delete OUT/index to rebuild"
        ) from exc


def write_manifest(store: Store, manifest: Manifest) -> None:
    manifest.updated_at = round(time.time(), 3)
    store.write_bytes(MANIFEST_KEY, manifest.to_json())
