"""Done-markers: ``OUT/_done/<stage>/<shard_id>.json``, written after a shard's outputs.

A marker is the only proof a shard finished: outputs without one are treated as debris from a
crash and rewritten. It holds the shard's stats (which add up across shards) and the fingerprint
of the config and models plus the digest of the shard's content, so a nightly run redoes a shard
when either changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from facesieve.errors import StorageError
from facesieve.storage.base import Store

DONE_DIR = "_done"


def marker_key(stage: str, shard_id: str) -> str:
    return f"{DONE_DIR}/{stage}/{shard_id}.json"


@dataclass(frozen=True)
class Marker:
    stage: str
    shard_id: str
    uri: str
    fingerprint: str
    content_digest: str
    stats: dict[str, Any]
    outputs: list[str] = field(default_factory=list)
    finished_at: float = 0.0

    def is_current(self, fingerprint: str, content_digest: str) -> bool:
        return self.fingerprint == fingerprint and self.content_digest == content_digest


def write_marker(store: Store, marker: Marker) -> None:
    if not marker.finished_at:
        marker = Marker(**{**asdict(marker), "finished_at": round(time.time(), 3)})
    store.write_bytes(
        marker_key(marker.stage, marker.shard_id), json.dumps(asdict(marker), indent=1).encode()
    )


def read_markers(store: Store, stage: str) -> dict[str, Marker]:
    """Every readable marker of a stage, by shard id; an unreadable one counts as absent."""
    found: dict[str, Marker] = {}
    for info in store.list(f"{DONE_DIR}/{stage}"):
        if not info.key.endswith(".json"):
            continue
        try:
            data = json.loads(store.read_bytes(info.key))
            marker = Marker(**data)
        except (StorageError, ValueError, TypeError):
            continue  # a damaged marker means the shard is redone, which is always safe
        found[marker.shard_id] = marker
    return found
