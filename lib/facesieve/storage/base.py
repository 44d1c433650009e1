"""The storage interface stages and runners are written against."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class ObjectInfo:
    """A listed file: its key relative to the store root, size, and a change tag (mtime/etag)."""

    key: str
    size: int
    tag: str


class Store(Protocol):
    """A root (folder or S3 prefix) holding files addressed by '/'-separated relative keys."""

    root_uri: str

    def uri(self, key: str) -> str:
        """Full URI of ``key`` (what users see in ``images.uri``)."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every file under ``prefix``, recursively, sorted by key."""
        ...

    def exists(self, key: str) -> bool: ...

    def read_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> BinaryIO:
        """A forward-only stream (large tar shards are never held in memory whole)."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomic: readers see the old file or the whole new one, never a part."""
        ...

    def sweep_partial(self) -> int:
        """Remove what an interrupted write left behind; returns the number of files removed."""
        ...

    def delete(self, key: str) -> None: ...
