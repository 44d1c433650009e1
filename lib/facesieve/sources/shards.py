"""Layouts and shards: how an input root is cut into units of work with stable ids.

A tar file is a shard. Folder and flat layouts are cut into groups of ``shard_size`` images in
sorted key order; a group's URI is ``ROOT?part=K``. The shard id is a hash of the shard URI, so
every output path is a function of the input. A shard also carries a digest of what it contains
(keys, sizes, change tags): when files are added or replaced, the digest changes and a nightly
run redoes exactly the shards whose content moved.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from facesieve.errors import ConfigError
from facesieve.faces.decode import IMAGE_EXTENSIONS
from facesieve.schema import stable_id
from facesieve.storage.base import ObjectInfo, Store

log = logging.getLogger(__name__)

LAYOUTS = ("webdataset", "folders", "flat")


@dataclass(frozen=True)
class Shard:
    """A unit of work: one tar, or one group of files of a folder/flat root."""

    shard_id: str
    uri: str
    layout: str
    keys: tuple[str, ...]  # the tar key, or the member file keys (relative to the store root)
    sizes: tuple[int, ...]
    content_digest: str


def _suffix(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def detect_layout(files: list[ObjectInfo]) -> str:
    """``webdataset`` if the root holds tar files; ``folders`` if every image sits exactly one
    folder deep (``label/image``); ``flat`` otherwise."""
    if not files:
        raise ConfigError("the input holds no files")
    if any(f.key.endswith(".tar") for f in files):
        return "webdataset"
    images = [f for f in files if _suffix(f.key) in IMAGE_EXTENSIONS]
    if images and all(f.key.count("/") == 1 for f in images):
        return "folders"
    return "flat"


def _digest(infos: list[ObjectInfo]) -> str:
    h = hashlib.sha256()
    for o in infos:
        h.update(f"{o.key}\0{o.size}\0{o.tag}\n".encode())
    return h.hexdigest()[:16]


def list_shards(store: Store, layout: str = "auto", shard_size: int = 1000) -> list[Shard]:
    """All shards of the input root, in a deterministic order."""
    files = list(store.list())
    chosen = detect_layout(files) if layout == "auto" else layout
    if chosen not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}")
    log.info("input %s: %d files, layout %s", store.root_uri, len(files), chosen)
    if chosen == "webdataset":
        tars = [f for f in files if f.key.endswith(".tar")]
        others = len(files) - len(tars)
        if others:
            log.warning(
                "webdataset layout: %d non-tar files ignored under %s", others, store.root_uri
            )
        return [
            Shard(
                stable_id(store.uri(t.key)),
                store.uri(t.key),
                chosen,
                (t.key,),
                (t.size,),
                _digest([t]),
            )
            for t in tars
        ]
    if chosen == "folders":
        deep = [f for f in files if f.key.count("/") != 1]
        if deep:
            log.warning(
                "folders layout: %d files not at ROOT/<label>/<file> are listed unlabeled "
                "(first: %s)",
                len(deep),
                deep[0].key,
            )
    shards = []
    for part, start in enumerate(range(0, len(files), shard_size)):
        group = files[start : start + shard_size]
        uri = f"{store.root_uri}?layout={chosen}&size={shard_size}&part={part}"
        shards.append(
            Shard(
                stable_id(uri),
                uri,
                chosen,
                tuple(g.key for g in group),
                tuple(g.size for g in group),
                _digest(group),
            )
        )
    return shards
