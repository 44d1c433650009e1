"""The records (files) of a shard, with labels and slots, streamed one at a time.

Every entry becomes exactly one record, whatever is wrong with it: a problem found while listing
(a named pipe, a broken link, a bad name) or while reading (permission denied, vanished since the
listing, a damaged tar) becomes a record with a status and a reason, and the shard goes on. Only a
*transient* storage error (a network failure, a 5xx) escapes, so that the executor retries the
whole unit after a backoff instead of recording a healthy file as broken.

Nothing is ever extracted to disk: tar members are read into memory, so a member named
``/etc/passwd`` or ``../../x`` cannot be written anywhere; such members, links and non-image files
still become records (status ``unsupported``).

A record can be *reused*: the caller's ``reusable`` check says its previous row still holds (same
size and change tag for a file, before reading it; same SHA-256 for a tar member, which is read
anyway), and the record then carries no data: its decode, detection and embedding are not redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from facesieve import schema
from facesieve.errors import StorageError
from facesieve.schema import IMAGE_EXTENSIONS
from facesieve.sources.ledger import TAR, FileEntry
from facesieve.sources.listing import folder_label, suffix
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

LABEL_SIDECARS = (".json", ".cls")
_VANISHED = {"2", "NoSuchKey", "404", "NotFound"}  # errno ENOENT, S3 codes


@dataclass(frozen=True)
class ShardWork:
    """One shard as a unit's payload: what to read, and the numbers its faces' ids are built on."""

    shard_id: str
    number: int
    kind: str  # tar | files
    uri: str
    layout: str
    files: tuple[FileEntry, ...]  # slot order; one entry (the tar itself) for a tar


@dataclass(frozen=True)
class Record:
    """One input file. ``data`` is None when the file was not read (``status`` or ``reuse``)."""

    uri: str
    label: str | None
    size: int
    slot: int
    tag: str | None
    data: bytes | None = None
    status: str | None = None  # preset when the file is rejected before decoding
    error: str | None = None
    reuse: bool = False
    sha256: str | None = None  # known before decoding for tar members

    @property
    def image_id(self) -> str:
        return schema.stable_id(self.uri)


# (uri, size, tag, sha256 or None) -> whether the previous row of that file still holds
Reusable = Callable[[str, int, str | None, str | None], bool]


def iter_records(
    store: Store, work: ShardWork, max_bytes: int, reusable: Reusable | None = None
) -> Iterator[Record]:
    check = reusable or (lambda *_: False)
    if work.kind == TAR:
        yield from _tar_records(store, work, max_bytes, check)
    else:
        yield from _file_records(store, work, max_bytes, check)


def read_failure(exc: StorageError) -> str:
    """The row's reason for a file that could not be read (never for a transient error)."""
    if exc.code in _VANISHED:
        return "the file vanished after the input was listed"
    return str(exc)


def _file_records(
    store: Store, work: ShardWork, max_bytes: int, reusable: Reusable
) -> Iterator[Record]:
    for entry in work.files:
        uri = store.uri(entry.key)
        label = folder_label(entry.key) if work.layout == "folders" else None
        base = Record(uri, label, entry.size, entry.slot, entry.tag)
        kind = suffix(entry.key) or "no extension"
        if entry.problem:
            status = (
                schema.DECODE_ERROR if entry.problem.startswith("cannot") else schema.UNSUPPORTED
            )
            yield replace(base, status=status, error=entry.problem)
        elif kind not in IMAGE_EXTENSIONS:
            yield replace(base, status=schema.UNSUPPORTED, error=f"not an image file type ({kind})")
        elif entry.size > max_bytes:
            error = f"file has {entry.size} bytes, limit is {max_bytes}"
            yield replace(base, status=schema.TOO_LARGE, error=error)
        elif reusable(uri, entry.size, entry.tag, None):
            yield replace(base, reuse=True)
        else:
            try:
                data = store.read_bytes(entry.key)
            except StorageError as exc:
                if exc.transient:
                    raise
                yield replace(base, status=schema.DECODE_ERROR, error=read_failure(exc))
                continue
            yield replace(base, data=data, size=len(data))


def _unsafe(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/") or "\\" in name


def _wds_key(name: str) -> str:
    """WebDataset convention: the key is the path up to the first dot of the file name."""
    folder, base = posixpath.split(name)
    return posixpath.join(folder, base.partition(".")[0])


def _parse_label(ext: str, data: bytes) -> str | None:
    text = data.decode("utf-8", errors="replace").strip()
    if ext == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            return None
        value = obj.get("label") if isinstance(obj, dict) else None
        return None if value is None else str(value)
    return text or None


def _member_record(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    uri: str,
    slot: int,
    max_bytes: int,
    reusable: Reusable,
) -> Record:
    """The record of one tar member that is not a label sidecar (its label is set by the group)."""
    name = member.name
    base = Record(uri, None, member.size, slot, f"{member.size}:{int(member.mtime)}")
    if _unsafe(name):
        error = "unsafe member path (absolute or '..'); not read"
        return replace(base, status=schema.UNSUPPORTED, error=error)
    if not member.isfile():
        error = "tar member is a link or device, not a file"
        return replace(base, size=0, status=schema.UNSUPPORTED, error=error)
    if suffix(name) not in IMAGE_EXTENSIONS:
        error = f"not an image file type ({suffix(name) or 'no extension'})"
        return replace(base, status=schema.UNSUPPORTED, error=error)
    if member.size > max_bytes:
        error = f"member has {member.size} bytes, limit is {max_bytes}"
        return replace(base, status=schema.TOO_LARGE, error=error)
    f = tar.extractfile(member)
    data = f.read() if f else b""
    sha = hashlib.sha256(data).hexdigest()
    if reusable(uri, member.size, base.tag, sha):
        return replace(base, reuse=True, sha256=sha)
    return replace(base, data=data, sha256=sha)


def _is_sidecar(member: tarfile.TarInfo) -> bool:
    return member.isfile() and not _unsafe(member.name) and suffix(member.name) in LABEL_SIDECARS


def _tar_records(
    store: Store, work: ShardWork, max_bytes: int, reusable: Reusable
) -> Iterator[Record]:
    """Stream a WebDataset tar: members sharing a key form a sample; its sidecar gives the label.

    A damaged tar yields the samples read so far, then one ``decode_error`` record for the tar;
    a tar that cannot be opened at all is one ``decode_error`` record.
    """
    (entry,) = work.files
    group: list[Record] = []
    group_key: str | None = None
    label: str | None = None
    members = 0
    slot = 0
    try:
        stream = store.open_read(entry.key)
    except StorageError as exc:
        if exc.transient:
            raise
        yield Record(
            work.uri,
            None,
            entry.size,
            0,
            entry.tag,
            status=schema.DECODE_ERROR,
            error=read_failure(exc),
        )
        return
    with stream:
        try:
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                for member in tar:
                    members += 1
                    if member.isdir():
                        continue
                    key = _wds_key(member.name)
                    if key != group_key:
                        yield from (replace(r, label=label) for r in group)
                        group, group_key, label = [], key, None
                    if _is_sidecar(member):
                        f = tar.extractfile(member)
                        label = _parse_label(suffix(member.name), f.read(1 << 16)) if f else None
                    else:
                        uri = f"{work.uri}#{member.name}"
                        group.append(_member_record(tar, member, uri, slot, max_bytes, reusable))
                        slot += 1
        except (tarfile.TarError, EOFError, OSError) as exc:
            log.warning("tar %s is damaged after %d members: %s", work.uri, members, exc)
            yield from (replace(r, label=label) for r in group)
            yield Record(
                work.uri,
                None,
                entry.size,
                slot,
                entry.tag,
                status=schema.DECODE_ERROR,
                error=f"tar archive damaged after {members} members: {exc}",
            )
            return
    yield from (replace(r, label=label) for r in group)
