"""Byte storage behind one small interface: a local folder or an S3 prefix.

Every path a stage uses is relative to a root URI, so the same code writes ``OUT/faces/x.parquet``
to a laptop folder or to ``s3://bucket/run/faces/x.parquet``.
"""

from __future__ import annotations

from pathlib import Path

from facesieve.storage.base import ObjectInfo, Store
from facesieve.storage.local import LocalStore
from facesieve.storage.s3 import S3Store, parse_s3_uri


def open_store(
    uri: str, s3_endpoint: str | None = None, follow_external_links: bool = False
) -> Store:
    """The store rooted at ``uri``: ``s3://bucket/prefix`` or a local path (created on write).

    ``follow_external_links`` lets a local input root read symbolic links that lead out of it.
    """
    if uri.startswith("s3://"):
        bucket, prefix = parse_s3_uri(uri)
        return S3Store(bucket, prefix, endpoint=s3_endpoint)
    return LocalStore(uri, follow_external_links)


def roots_overlap(a: str, b: str) -> bool:
    """Whether one root lies inside the other or they are the same (local paths resolved, so
    ``./data`` and ``data/out`` are compared as what they are). Commands that write one root
    while reading another refuse such pairs: a run would read its own outputs as input, an
    apply would write into the dataset it reads."""

    def norm(uri: str) -> str:
        root = uri if uri.startswith("s3://") else str(Path(uri).expanduser().resolve())
        return root.rstrip("/") + "/"

    x, y = norm(a), norm(b)
    return x.startswith(y) or y.startswith(x)


__all__ = [
    "LocalStore",
    "ObjectInfo",
    "S3Store",
    "Store",
    "open_store",
    "parse_s3_uri",
    "roots_overlap",
]
