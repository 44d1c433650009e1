"""A destination root of ``apply`` (DEST, or the quarantine folder) and what apply owns in it.

Idempotence and safety come from one record, ``_facesieve.files.parquet``: every file apply
wrote there, with a digest of what it was made from. A file whose digest is unchanged and that
is still there with its size is not written again; a file apply wrote before and that no longer
belongs is removed; a file apply did not write is never removed nor overwritten. The record is
written *before* the first file (listing every key this apply may write) and again at the end,
so an apply killed half way leaves no file the next apply would take for someone else's.

The record sits at the root, not in a folder: a folder would be a class to loaders that take
every subfolder of a root as a label (torchvision's ``ImageFolder``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.errors import ConfigError
from facesieve.outputs import parquet_bytes
from facesieve.storage.base import ObjectInfo, Store
from facesieve.storage.local import LocalStore

log = logging.getLogger(__name__)

FILES_KEY = "_facesieve.files.parquet"
MANIFEST_KEY = "_facesieve.manifest.parquet"
SUMMARY_KEY = "_facesieve.summary.json"
OWN_KEYS = (FILES_KEY, MANIFEST_KEY, SUMMARY_KEY)
RETRIES = 4  # a transient storage error is tried again after 5, 10, 20, 40 s (as every step)
PENDING = ""  # the digest of a file an unfinished apply may have written

FILES_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("digest", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
    ]
)

WRITTEN, UNCHANGED, FOREIGN = "written", "unchanged", "foreign"


@dataclass
class Target:
    """One destination root: its previous record, its listing now, and this apply's files."""

    store: Store
    dry_run: bool
    name: str = "DEST"
    previous: dict[str, tuple[str, int]] = field(default_factory=dict)
    listing: dict[str, ObjectInfo] = field(default_factory=dict)
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {WRITTEN: 0, UNCHANGED: 0})
    write_keys: list[str] = field(default_factory=list)  # what this apply writes (or would)

    @classmethod
    def open(cls, store: Store, dry_run: bool, name: str = "DEST") -> Target:
        """The target as it is; ``ConfigError`` for a non-empty root apply never wrote to."""
        if not store.root_exists() and store.root_uri.startswith("s3://"):
            raise ConfigError(f"{name} {store.root_uri}: the bucket does not exist")
        listing = {o.key: o for o in store.list()} if store.root_exists() else {}
        target = cls(store, dry_run, name, listing=listing)
        if FILES_KEY in listing:
            table = pq.read_table(io.BytesIO(store.read_bytes(FILES_KEY)))
            for key, digest, size in zip(*(c.to_pylist() for c in table.columns), strict=True):
                target.previous[key] = (digest, size)
        elif listing:
            first = next(iter(listing))
            raise ConfigError(
                f"{name} {store.root_uri} holds {len(listing)} file(s) (e.g. {first}) and no "
                f"{FILES_KEY}: apply writes only into an empty folder or one it wrote before "
                "(it never deletes or overwrites files it did not write)"
            )
        return target

    def begin(self, keys: Iterable[str]) -> None:
        """Record every key this apply may write, before writing any."""
        pending = dict(self.previous)
        for key in keys:
            if key and key not in OWN_KEYS:
                pending.setdefault(key, (PENDING, -1))
        if not self.dry_run:
            self._write_record(pending)

    def check(self, key: str, digest: str) -> str:
        """UNCHANGED (already there as ``digest``: recorded, nothing to write), FOREIGN (the key
        holds a file apply did not write: leave it) or WRITTEN (the caller writes it, unless this
        is a dry run, then calls ``done``)."""
        old = self.previous.get(key)
        now = self.listing.get(key)
        if key in OWN_KEYS or (now is not None and old is None):
            return FOREIGN
        if old is not None and old[0] == digest and now is not None and now.size == old[1]:
            self.files[key] = old
            self.counts[UNCHANGED] += 1
            return UNCHANGED
        return WRITTEN

    def done(self, key: str, digest: str, size: int) -> None:
        self.files[key] = (digest, size)
        self.counts[WRITTEN] += 1
        self.write_keys.append(key)

    def put(self, key: str, digest: str, write: Callable[[], int]) -> str:
        """``check``, then ``write`` (which returns the size) when needed and not a dry run."""
        state = self.check(key, digest)
        if state == WRITTEN:
            self.done(key, digest, -1 if self.dry_run else write())
        return state

    def retain(self, key: str) -> bool:
        """Keep what apply wrote at ``key`` before (its source changed since the report, so it
        is neither rewritten nor removed); False when there is nothing to keep."""
        old = self.previous.get(key)
        if old is None or old[0] == PENDING or key not in self.listing:
            return False
        self.files[key] = old
        return True

    def stale_keys(self) -> list[str]:
        """Files apply wrote before that this apply did not write: they no longer belong."""
        return sorted(k for k in self.previous if k not in self.files and k not in OWN_KEYS)

    def finish(self) -> int:
        """Remove the files that no longer belong, then write the record; how many removed."""
        stale = self.stale_keys()
        if not self.dry_run:
            for n, key in enumerate(stale, 1):
                self.store.delete(key)
                _remove_empty_folders(self.store, key)
                if n % 1000 == 0:
                    logging.getLogger("facesieve.progress").info(
                        "apply: removed %d/%d old files from %s", n, len(stale), self.name
                    )
            self._write_record(self.files)
        return len(stale)

    def _write_record(self, files: dict[str, tuple[str, int]]) -> None:
        rows = [{"key": k, "digest": d, "size": s} for k, (d, s) in sorted(files.items())]
        table = pa.Table.from_pylist(rows, schema=FILES_SCHEMA)
        self.store.write_bytes(FILES_KEY, parquet_bytes(table))


def _remove_empty_folders(store: Store, key: str) -> None:
    """Local folders a removal left empty go too: an empty label folder is a class without
    images to a loader, and a fresh apply would not have made it."""
    if not isinstance(store, LocalStore):
        return
    folder = Path(store.uri(key)).parent
    while folder != store.root and store.root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or not ours to remove): stop climbing
            return
        folder = folder.parent
