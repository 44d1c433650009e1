"""The input ledger, ``OUT/ledger/files.parquet``: which shard each input file belongs to.

A file keeps its shard for life, so a nightly run redoes work in proportion to what changed:
- new files go into new shards (groups of ``shard_size`` in key order), whatever their names, so
  a folder that sorts first moves nothing else;
- a changed file (size or change tag differ) stays in its shard and gets a new *slot* there, so
  the ids of its old faces are never reused (``schema.index_id``); its shard is redone, reusing
  the rows of every unchanged file;
- a deleted file leaves its shard; a shard with no file left is dropped, and every stage removes
  what it had written for it;
- a tar is a shard of its own; when it changes it gets a new shard number (its members' ids
  all change) and is read again.
Each shard has a *number* (never reused) that index ids are built from, and remembers its next
free slot. The ledger also records the input root and layout: a later run keeps both.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass, field, replace

import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.errors import ConfigError
from facesieve.outputs import parquet_bytes
from facesieve.schema import stable_id
from facesieve.sources.listing import Listing, is_tar
from facesieve.storage.base import ObjectInfo, Store

log = logging.getLogger(__name__)

LEDGER_KEY = "ledger/files.parquet"
VERSION = 1
TAR, FILES = "tar", "files"
MIN_GUARDED = 20  # the mass-removal guard ignores runs that remove fewer files than this

FILES_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),  # relative to the input root
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("slot", pa.int32(), nullable=False),  # the file's place in its shard
        pa.field("size", pa.int64(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),  # mtime_ns or ETag when listed
        pa.field("problem", pa.string()),  # why it cannot be read (a named pipe, ...); or null
    ]
)


@dataclass(frozen=True)
class FileEntry:
    key: str
    shard_id: str
    slot: int
    size: int
    tag: str
    problem: str | None = None

    def same_as(self, info: ObjectInfo) -> bool:
        return (self.size, self.tag, self.problem) == (info.size, info.tag, info.problem)


@dataclass
class ShardInfo:
    shard_id: str
    number: int  # never reused; the high bits of its faces' index ids
    kind: str  # tar | files
    uri: str  # the tar's URI, or ROOT?group=N
    next_slot: int = 0


@dataclass
class Ledger:
    input_uri: str
    layout: str
    next_number: int = 0
    shards: dict[str, ShardInfo] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)  # by key

    def shard_files(self) -> dict[str, list[FileEntry]]:
        """Files of each shard, in slot order."""
        by_shard: dict[str, list[FileEntry]] = {sid: [] for sid in self.shards}
        for entry in self.files.values():
            by_shard[entry.shard_id].append(entry)
        for entries in by_shard.values():
            entries.sort(key=lambda e: e.slot)
        return by_shard


@dataclass(frozen=True)
class LedgerChanges:
    """Files added, removed and changed since the previous run (keys), and shard counts."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    shards_added: int
    shards_removed: int

    def counts(self) -> dict[str, int]:
        return {
            "files_added": len(self.added),
            "files_removed": len(self.removed),
            "files_changed": len(self.changed),
            "shards_added": self.shards_added,
            "shards_removed": self.shards_removed,
        }


def read_ledger(out: Store) -> Ledger | None:
    if not out.exists(LEDGER_KEY):
        return None
    table = pq.read_table(io.BytesIO(out.read_bytes(LEDGER_KEY)))
    meta = json.loads((table.schema.metadata or {})[b"facesieve.ledger"])
    if meta.get("version") != VERSION:
        raise ConfigError(f"{out.uri(LEDGER_KEY)} has ledger version {meta.get('version')}")
    shards = {s["shard_id"]: ShardInfo(**s) for s in meta["shards"]}
    files = {r["key"]: FileEntry(**r) for r in table.to_pylist()}
    return Ledger(meta["input_uri"], meta["layout"], meta["next_number"], shards, files)


def write_ledger(out: Store, ledger: Ledger) -> None:
    rows = sorted(ledger.files.values(), key=lambda e: e.key)
    table = pa.Table.from_pylist([asdict(r) for r in rows], schema=FILES_SCHEMA)
    meta = {
        "version": VERSION,
        "input_uri": ledger.input_uri,
        "layout": ledger.layout,
        "next_number": ledger.next_number,
        "shards": [asdict(s) for s in sorted(ledger.shards.values(), key=lambda s: s.number)],
    }
    table = table.replace_schema_metadata({"facesieve.ledger": json.dumps(meta)})
    out.write_bytes(LEDGER_KEY, parquet_bytes(table))


def update_ledger(
    old: Ledger | None,
    listing: Listing,
    input_store: Store,
    shard_size: int,
    max_removed_share: float = 1.0,
) -> tuple[Ledger, LedgerChanges]:
    """The ledger for today's listing, and what changed since ``old``."""
    uri = input_store.root_uri
    if old is not None and old.input_uri != uri:
        raise ConfigError(
            f"this output root holds the results of {old.input_uri}, not {uri}: use another --out"
        )
    new = Ledger(uri, listing.layout, old.next_number if old else 0)
    previous = old.files if old else {}
    prev_shards = old.shards if old else {}
    added: list[str] = []
    changed: list[str] = []
    fresh: list[ObjectInfo] = []
    for info in listing.entries:
        entry = previous.get(info.key)
        tar = listing.layout == "webdataset" and is_tar(info)
        kind = TAR if tar else FILES
        shard = prev_shards.get(entry.shard_id) if entry else None
        if entry is None or shard is None or shard.kind != kind:
            if tar:
                sid = stable_id(input_store.uri(info.key))
                new.shards[sid] = ShardInfo(sid, _take(new), TAR, input_store.uri(info.key), 1)
                new.files[info.key] = FileEntry(info.key, sid, 0, info.size, info.tag)
            else:
                fresh.append(info)
            added.append(info.key)
            continue
        shard = new.shards.setdefault(shard.shard_id, replace(shard))
        if entry.same_as(info):
            new.files[info.key] = entry
            continue
        changed.append(info.key)
        if tar:  # every member's id changes: a new number, and the tar is read again
            shard.number = _take(new)
            new.files[info.key] = FileEntry(info.key, shard.shard_id, 0, info.size, info.tag)
        else:  # a new slot in the same shard: the old faces' ids are never reused
            new.files[info.key] = FileEntry(
                info.key, shard.shard_id, shard.next_slot, info.size, info.tag, info.problem
            )
            shard.next_slot += 1
    for start in range(0, len(fresh), shard_size):
        group = fresh[start : start + shard_size]
        number = _take(new)
        group_uri = f"{uri}?group={number}"
        sid = stable_id(group_uri)
        new.shards[sid] = ShardInfo(sid, number, FILES, group_uri, len(group))
        for slot, info in enumerate(group):
            new.files[info.key] = FileEntry(info.key, sid, slot, info.size, info.tag, info.problem)
    removed = sorted(
        k for k in previous if k not in new.files or new.files[k].shard_id != previous[k].shard_id
    )
    if len(removed) >= MIN_GUARDED and len(removed) > max_removed_share * len(previous):
        raise ConfigError(
            f"{len(removed)} of the {len(previous)} files of the previous run are gone from "
            f"{uri}; stopping before their outputs are deleted (an unmounted volume or a wrong "
            "prefix looks like this). Pass --accept-removals if the removal is intended"
        )
    used = {e.shard_id for e in new.files.values()}
    dropped = [sid for sid in new.shards if sid not in used]
    for sid in dropped:
        del new.shards[sid]
    changes = LedgerChanges(
        added=added,
        removed=removed,
        changed=changed,
        shards_added=len(set(new.shards) - set(prev_shards)),
        shards_removed=len(set(prev_shards) - set(new.shards)),
    )
    log.info(
        "ledger: %d files in %d shards; %d added, %d changed, %d removed",
        len(new.files),
        len(new.shards),
        len(added),
        len(changed),
        len(removed),
    )
    return new, changes


def _take(ledger: Ledger) -> int:
    number = ledger.next_number
    ledger.next_number += 1
    return number
