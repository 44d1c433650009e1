"""Listing an input root and naming its layout: every entry listed, none silently left out.

Layouts (docs/FORMATS.md): ``webdataset`` (``*.tar`` shards), ``folders`` (``ROOT/<label>/<image>``)
and ``flat`` (anything else, unlabeled). A root that mixes tar shards with loose images is
refused when the layout is detected: reading one part and ignoring the other would be a
half-read input. Named explicitly, ``--layout webdataset`` reads the tars and lists each loose
file as an ``unsupported`` row; ``--layout folders|flat`` lists the tars as ``unsupported`` files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from facesieve.errors import ConfigError
from facesieve.schema import IMAGE_EXTENSIONS
from facesieve.storage.base import ObjectInfo, Store

log = logging.getLogger(__name__)

LAYOUTS = ("webdataset", "folders", "flat")
NOT_A_TAR = "a file beside the tar shards of a webdataset root; not read"


def suffix(key: str) -> str:
    name = key.rstrip("/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


def is_tar(entry: ObjectInfo) -> bool:
    return entry.problem is None and suffix(entry.key) == ".tar"


def folder_label(key: str) -> str | None:
    """The label of a ``folders`` entry: its folder when it sits exactly one level deep (an
    unreadable label folder, listed as ``label/``, keeps its label too)."""
    parts = key.split("/")
    return parts[0] if len(parts) == 2 else None


@dataclass(frozen=True)
class Listing:
    layout: str
    entries: list[ObjectInfo]  # sorted by key; tar shards and files, problems included


def detect_layout(entries: list[ObjectInfo]) -> str:
    """``webdataset`` if the root holds tars, ``folders`` if every image sits exactly one folder
    deep, ``flat`` otherwise; a root of tars *and* loose images is refused."""
    if not entries:
        raise ConfigError("the input holds no files")
    tars = [e for e in entries if is_tar(e)]
    images = [e for e in entries if suffix(e.key) in IMAGE_EXTENSIONS]
    if tars and images:
        raise ConfigError(
            f"the input mixes {len(tars)} tar shard(s) (e.g. {tars[0].key}) with {len(images)} "
            f"loose image(s) (e.g. {images[0].key}); facesieve reads one layout per root. Move "
            "them apart, or name the layout: --layout webdataset reads the tars and reports the "
            "loose files unread, --layout flat reads the images and reports the tars unread"
        )
    if tars:
        return "webdataset"
    if images and all(e.key.count("/") == 1 for e in images):
        return "folders"
    return "flat"


def list_input(store: Store, layout: str = "auto", known_layout: str | None = None) -> Listing:
    """Every entry of the input root, and its layout.

    ``known_layout`` is the layout the output root was built with: a later run keeps it (new
    files must not turn a folder tree into something else), and a different ``--layout`` is an
    error rather than a silent rebuild.
    """
    if layout not in ("auto", *LAYOUTS):
        raise ConfigError(f"unknown layout {layout!r}")
    if not store.root_exists():
        raise ConfigError(f"the input {store.root_uri} does not exist")
    entries = list(store.list())
    if not entries:
        raise ConfigError(f"the input {store.root_uri} holds no files")
    if known_layout and layout not in ("auto", known_layout):
        raise ConfigError(
            f"this output root was built from a {known_layout} input; --layout {layout} would "
            "need a new output root"
        )
    chosen = known_layout or (detect_layout(entries) if layout == "auto" else layout)
    if chosen == "webdataset":
        entries = [e if is_tar(e) or e.problem else replace(e, problem=NOT_A_TAR) for e in entries]
    problems = [e for e in entries if e.problem]
    if problems:
        log.warning(
            "input %s: %d entries cannot be read as images (first: %s: %s); each gets a row",
            store.root_uri,
            len(problems),
            problems[0].key,
            problems[0].problem,
        )
    if chosen == "folders":
        deep = [e for e in entries if folder_label(e.key) is None]
        if deep:
            log.warning(
                "folders layout: %d files not at ROOT/<label>/<file> are listed unlabeled "
                "(first: %s)",
                len(deep),
                deep[0].key,
            )
    log.info("input %s: %d entries, layout %s", store.root_uri, len(entries), chosen)
    return Listing(chosen, entries)
