"""The storage interface stages and runners are written against."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class ObjectInfo:
    """A listed entry: its key relative to the store root, size, and a change tag (mtime/ETag).

    ``problem`` is set when the entry cannot be read as a file, found while listing: a named
    pipe, a broken link, a link leaving the root, a name that is not UTF-8, a folder that cannot
    be listed. Such entries are still listed so that each becomes a row with its reason instead
    of vanishing.
    """

    key: str
    size: int
    tag: str
    problem: str | None = None


class Store(Protocol):
    """A root (folder or S3 prefix) holding files addressed by '/'-separated relative keys."""

    root_uri: str
    # Whether ``open_read`` gives a seekable file, so a reader can fetch parts of it (Parquet
    # readers then read only the column chunks asked for, not a file of embeddings).
    random_access: bool

    def uri(self, key: str) -> str:
        """Full URI of ``key`` (what users see in ``images.uri``)."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every file under ``prefix``, recursively, sorted by key."""
        ...

    def root_exists(self) -> bool:
        """Whether the root folder (or the bucket) exists at all."""
        ...

    def exists(self, key: str) -> bool: ...

    def read_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> BinaryIO:
        """A forward-only stream (large tar shards are never held in memory whole)."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Atomic: readers see the old file or the whole new one, never a part."""
        ...

    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A stream for writing ``key`` without holding it in memory (large tar shards). Atomic
        like ``write_bytes``: the file appears whole when the block ends without an error, and
        not at all (the old one stays) when it raises."""
        ...

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """The file and a tag that changes whenever it is rewritten (for ``replace_if``)."""
        ...

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """Write ``key`` only if it does not exist: its new tag, or None when it already did."""
        ...

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """Rewrite ``key`` only if its tag is still ``tag``: the new tag, or None when it changed
        or vanished (compare and swap)."""
        ...

    def sweep_partial(self) -> int:
        """Remove what an interrupted write left behind; returns the number of files removed."""
        ...

    def delete(self, key: str) -> None: ...
