"""Read back input images by the ``uri`` recorded in ``images``: files, S3 objects, tar members.

Used for the few images the rules need pixels of (near-duplicate candidates, report thumbnails).
Tar members are gathered in one streaming pass per tar; plain files are read in parallel, in
chunks, through one store per bucket or folder. A file that vanished or fails to read is left
out (callers treat it as "no pixel evidence") and counted in one warning per call, with the
first failure named; each one is logged at debug level.
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


CHUNK = 64  # files per thread task: one task per file cost more than failed reads themselves


class _Containers:
    """One store per bucket or folder for a whole call: a boto3 client per object would cost
    more than most reads."""

    def __init__(self, s3_endpoint: str | None) -> None:
        self.s3_endpoint = s3_endpoint
        self.stores: dict[str, Store] = {}

    def __call__(self, uri: str) -> tuple[Store, str]:
        if uri.startswith("s3://"):
            bucket, key = parse_s3_uri(uri)
            root = f"s3://{bucket}"
            if root not in self.stores:
                self.stores[root] = S3Store(bucket, "", endpoint=self.s3_endpoint)
            return self.stores[root], key
        folder, name = posixpath.split(uri)
        folder = folder or "."
        if folder not in self.stores:
            self.stores[folder] = LocalStore(folder)
        return self.stores[folder], name


_Job = tuple[str, Store | Exception, str]  # uri, its container (or why there is none), key


def _read_all(jobs: list[_Job]) -> list[tuple[str, bytes | Exception]]:
    results: list[tuple[str, bytes | Exception]] = []
    for uri, store, key in jobs:
        try:
            if isinstance(store, Exception):
                raise store
            results.append((uri, store.read_bytes(key)))
        except Exception as exc:
            results.append((uri, exc))
    return results


def fetch_bytes(
    uris: Iterable[str], s3_endpoint: str | None = None, threads: int = 8
) -> dict[str, bytes]:
    """uri -> bytes for every uri that could be read."""
    container = _Containers(s3_endpoint)
    plain: list[_Job] = []
    tars: dict[str, set[str]] = {}
    for uri in dict.fromkeys(uris):
        tar, sep, member = uri.partition("#")
        if sep:
            tars.setdefault(tar, set()).add(member)
            continue
        try:
            plain.append((uri, *container(uri)))
        except Exception as exc:  # a malformed uri: that file only
            plain.append((uri, exc, ""))
    got: dict[str, bytes] = {}
    failed: list[tuple[str, Exception]] = []
    chunks = [plain[i : i + CHUNK] for i in range(0, len(plain), CHUNK)]
    with ThreadPoolExecutor(threads) as pool:
        for results in pool.map(_read_all, chunks):
            for uri, data in results:
                if isinstance(data, Exception):
                    failed.append((uri, data))
                else:
                    got[uri] = data
    for tar_uri, members in tars.items():
        try:
            store, key = container(tar_uri)
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
