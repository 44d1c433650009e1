"""Copying one file from the input to a destination: a hard link where both are local folders
on one filesystem (no bytes copied, no space used), a streamed copy otherwise.

A link is made under a temporary name and renamed over the destination, never written through:
writing into a linked file would change the input. Filesystems that refuse links (another
device, or a filesystem without them) fall back to a copy.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from facesieve.errors import StorageError
from facesieve.storage.base import Store
from facesieve.storage.local import LocalStore

CHUNK = 1 << 20
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


def transfer(src: Store, src_key: str, dst: Store, dst_key: str, link: bool = True) -> int:
    """Put ``src_key`` at ``dst_key`` (atomically); returns its size in bytes."""
    if link and isinstance(src, LocalStore) and isinstance(dst, LocalStore):
        size = _link(src, src_key, dst, dst_key)
        if size is not None:
            return size
    size = 0
    with src.open_read(src_key) as reader, dst.open_write(dst_key) as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)
            size += len(chunk)
    return size


def _link(src: LocalStore, src_key: str, dst: LocalStore, dst_key: str) -> int | None:
    """Hard-link, or None when this filesystem pair cannot (the caller copies instead)."""
    source, target = Path(src.uri(src_key)), Path(dst.uri(dst_key))
    tmp = target.parent / f".{target.name}.link.tmp"
    if not source.is_file():
        return None  # let the store's own read say what is wrong with it
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)
        os.link(source, tmp, follow_symlinks=True)
        os.replace(tmp, target)
        return target.stat().st_size
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _NO_LINK:
            return None
        raise StorageError(f"cannot link {source} to {target}: {exc.strerror or exc}") from None
