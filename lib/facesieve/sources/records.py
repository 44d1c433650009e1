"""The records (files) inside a shard, with their labels, streamed one at a time.

Nothing is ever extracted to disk: tar members are read into memory, so a member named
``/etc/passwd`` or ``../../x`` cannot be written anywhere; such members, links and non-image files
still become records (status ``unsupported``) so that nothing vanishes from the report.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, replace

from facesieve import schema
from facesieve.faces.decode import IMAGE_EXTENSIONS
from facesieve.sources.shards import Shard
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

LABEL_SIDECARS = (".json", ".cls")


@dataclass(frozen=True)
class Record:
    """One input file. ``data`` is None when the file was not read (``status`` says why)."""

    uri: str
    label: str | None
    size: int
    data: bytes | None = None
    status: str | None = None  # preset when the file is rejected before decoding
    error: str | None = None

    @property
    def image_id(self) -> str:
        return schema.stable_id(self.uri)


def _ext(name: str) -> str:
    base = posixpath.basename(name)
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def iter_records(store: Store, shard: Shard, max_bytes: int) -> Iterator[Record]:
    if shard.layout == "webdataset":
        yield from _tar_records(store, shard, max_bytes)
    else:
        yield from _file_records(store, shard, max_bytes)


def _file_records(store: Store, shard: Shard, max_bytes: int) -> Iterator[Record]:
    for key, size in zip(shard.keys, shard.sizes, strict=True):
        uri = store.uri(key)
        label = key.split("/", 1)[0] if shard.layout == "folders" and key.count("/") == 1 else None
        if _ext(key) not in IMAGE_EXTENSIONS:
            kind = _ext(key) or "no extension"
            yield replace(
                _rejected(uri, size, schema.UNSUPPORTED, f"not an image file type ({kind})"),
                label=label,
            )
        elif size > max_bytes:
            error = f"file has {size} bytes, limit is {max_bytes}"
            yield replace(_rejected(uri, size, schema.TOO_LARGE, error), label=label)
        else:
            yield Record(uri, label, size, data=store.read_bytes(key))


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
    tar: tarfile.TarFile, member: tarfile.TarInfo, uri: str, max_bytes: int
) -> Record:
    """The record of one tar member that is not a label sidecar (its label is set by the group)."""
    name = member.name
    if _unsafe(name):
        return _rejected(
            uri, member.size, schema.UNSUPPORTED, "unsafe member path (absolute or '..'); not read"
        )
    if not member.isfile():
        return _rejected(uri, 0, schema.UNSUPPORTED, "tar member is a link or device, not a file")
    if _ext(name) not in IMAGE_EXTENSIONS:
        return _rejected(
            uri,
            member.size,
            schema.UNSUPPORTED,
            f"not an image file type ({_ext(name) or 'no extension'})",
        )
    if member.size > max_bytes:
        return _rejected(
            uri,
            member.size,
            schema.TOO_LARGE,
            f"member has {member.size} bytes, limit is {max_bytes}",
        )
    f = tar.extractfile(member)
    return Record(uri, None, member.size, data=f.read() if f else b"")


def _rejected(uri: str, size: int, status: str, error: str) -> Record:
    return Record(uri, None, size, status=status, error=error)


def _is_sidecar(member: tarfile.TarInfo) -> bool:
    return member.isfile() and not _unsafe(member.name) and _ext(member.name) in LABEL_SIDECARS


def _tar_records(store: Store, shard: Shard, max_bytes: int) -> Iterator[Record]:
    """Stream a WebDataset tar: members sharing a key form a sample; its sidecar gives the label.

    A damaged tar yields the samples read so far, then one ``decode_error`` record for the tar.
    """
    group: list[Record] = []
    group_key: str | None = None
    label: str | None = None
    members = 0
    with store.open_read(shard.keys[0]) as stream:
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
                        label = _parse_label(_ext(member.name), f.read(1 << 16)) if f else None
                    else:
                        group.append(
                            _member_record(tar, member, f"{shard.uri}#{member.name}", max_bytes)
                        )
        except (tarfile.TarError, EOFError, OSError) as exc:
            log.warning("tar %s is damaged after %d members: %s", shard.uri, members, exc)
            yield from (replace(r, label=label) for r in group)
            yield _rejected(
                shard.uri,
                shard.sizes[0],
                schema.DECODE_ERROR,
                f"tar archive damaged after {members} members: {exc}",
            )
            return
    yield from (replace(r, label=label) for r in group)
