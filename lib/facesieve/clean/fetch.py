"""Read back input images by the ``uri`` recorded in ``images``: files, S3 objects, tar members.

Used for the few images the rules need pixels of (near-duplicate candidates, report thumbnails).
Tar members are gathered in one streaming pass per tar; plain files are read in parallel. A file
that vanished or fails to read is left out (callers treat it as "no pixel evidence") and counted
in one warning per call, with the first failure named; each one is logged at debug level.
"""

from __future__ import annotations

import logging
import posixpath
import tarfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from facesieve.storage import LocalStore, S3Store, parse_s3_uri
from facesieve.storage.base import Store

log = logging.getLogger(__name__)


def _container(uri: str, s3_endpoint: str | None) -> tuple[Store, str]:
    if uri.startswith("s3://"):
        bucket, key = parse_s3_uri(uri)
        return S3Store(bucket, "", endpoint=s3_endpoint), key
    folder, name = posixpath.split(uri)
    return LocalStore(folder or "."), name


def fetch_bytes(
    uris: Iterable[str], s3_endpoint: str | None = None, threads: int = 8
) -> dict[str, bytes]:
    """uri -> bytes for every uri that could be read."""
    plain: list[str] = []
    tars: dict[str, set[str]] = {}
    for uri in dict.fromkeys(uris):
        tar, sep, member = uri.partition("#")
        if sep:
            tars.setdefault(tar, set()).add(member)
        else:
            plain.append(uri)
    got: dict[str, bytes] = {}
    failed: list[tuple[str, Exception]] = []

    def read_one(uri: str) -> tuple[str, bytes | Exception]:
        try:
            store, key = _container(uri, s3_endpoint)
            return uri, store.read_bytes(key)
        except Exception as exc:
            return uri, exc

    with ThreadPoolExecutor(threads) as pool:
        for uri, data in pool.map(read_one, plain):
            if isinstance(data, Exception):
                failed.append((uri, data))
            else:
                got[uri] = data
    for tar_uri, members in tars.items():
        try:
            store, key = _container(tar_uri, s3_endpoint)
            with store.open_read(key) as stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
                for m in tar:
                    if m.name in members and m.isfile():
                        f = tar.extractfile(m)
                        if f is not None:
                            got[f"{tar_uri}#{m.name}"] = f.read()
        except Exception as exc:
            failed.append((tar_uri, exc))
    for uri, exc in failed:
        log.debug("cannot read back %s: %s", uri, exc)
    if failed:
        uri, exc = failed[0]
        log.warning(
            "cannot read back %d of %d files or tars (first: %s: %s)",
            len(failed),
            len(plain) + len(tars),
            uri,
            exc,
        )
    return got
