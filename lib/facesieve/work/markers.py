"""Done-markers: ``OUT/_done/<step>/<unit_id>.json``, written after a unit's outputs.

A marker is the only proof a unit finished: outputs without one are debris from a crash and are
rewritten. It holds the unit's input digest (a later run skips the unit while the digest is the
same), its stats (which add up across units), the keys it wrote (removed when the unit goes
away or writes others) and step-specific ``meta`` that the step's next plan reads back.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from facesieve.errors import StorageError
from facesieve.storage.base import Store

DONE_DIR = "_done"


def marker_key(step: str, unit_id: str) -> str:
    return f"{DONE_DIR}/{step}/{unit_id}.json"


@dataclass(frozen=True)
class Marker:
    step: str
    unit_id: str
    label: str
    digest: str
    stats: dict[str, Any]
    outputs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    attempts: int = 1
    finished_at: float = 0.0
    worker: dict[str, Any] = field(default_factory=dict)  # where it ran: node_id, host, pid


def write_marker(store: Store, marker: Marker) -> None:
    if not marker.finished_at:
        marker = Marker(**{**asdict(marker), "finished_at": round(time.time(), 3)})
    store.write_bytes(
        marker_key(marker.step, marker.unit_id), json.dumps(asdict(marker), indent=1).encode()
    )


def read_markers(store: Store, step: str, threads: int = 16) -> dict[str, Marker]:
    """Every readable marker of a step, by unit id; an unreadable one counts as absent.

    Read in parallel: an S3 output root of a large job holds thousands of markers.
    """
    keys = [i.key for i in store.list(f"{DONE_DIR}/{step}") if i.key.endswith(".json")]

    def load(key: str) -> Marker | None:
        try:
            return Marker(**json.loads(store.read_bytes(key)))
        except StorageError as exc:
            if exc.transient:
                raise  # an outage must not look like "nothing is done"
            return None
        except (ValueError, TypeError):
            return None  # a damaged marker means the unit is redone, which is always safe

    with ThreadPoolExecutor(min(threads, max(len(keys), 1))) as pool:
        found = [m for m in pool.map(load, keys) if m is not None]
    return {m.unit_id: m for m in sorted(found, key=lambda m: m.unit_id)}
