"""What ``apply`` reads: a finished run's action rows, its ledger, and the input as it is now.

The report describes the input as it was when the report was made. A file that changed since
(other size or change tag than the ledger recorded, or other size than the report saw) or that
is gone would have the report's verdict applied to bytes nobody looked at, so each image gets a
*freshness* here: ``None`` when it may be applied, else the reason it must not be.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq

from facesieve.errors import ConfigError
from facesieve.sources.ledger import TAR, FileEntry, Ledger, read_ledger
from facesieve.storage import open_store
from facesieve.storage.base import ObjectInfo, Store

log = logging.getLogger(__name__)

ACTIONS_KEY = "report/actions.parquet"
STATE_KEY = "report/state.parquet"
_COLUMNS = ["image_id", "uri", "label", "action", "reasons", "suggested_label"]
CHANGED = "changed since the report (size or change tag differ): not applied; rerun `facesieve run`"
VANISHED = "gone from the input since the report: not applied"
UNKNOWN = "not in the run's ledger: not applied"


@dataclass
class Source:
    """A finished run: its input store and layout, action rows, and the input listed now."""

    out: Store
    input: Store
    ledger: Ledger
    rows: list[dict[str, Any]]
    report_sha: dict[str, str]  # image_id -> SHA-256 the report saw (tar members are checked)
    report_bytes: dict[str, int]
    listing: dict[str, ObjectInfo]  # the input now, by key

    @property
    def layout(self) -> str:
        return self.ledger.layout

    def entry_of(self, uri: str) -> FileEntry | None:
        """The ledger entry of an image's file (the tar, for a member)."""
        return self._by_uri.get(uri.split("#", 1)[0] if "#" in uri else uri)

    def key_of(self, uri: str) -> str | None:
        entry = self.entry_of(uri)
        return entry.key if entry else None

    def freshness(self, image_id: str, uri: str) -> str | None:
        """None when the file is as the report saw it, else why it is not applied."""
        entry = self.entry_of(uri)
        if entry is None:
            return UNKNOWN
        now = self.listing.get(entry.key)
        if now is None:
            return VANISHED
        if (now.size, now.tag) != (entry.size, entry.tag):
            return CHANGED
        if "#" not in uri and self.report_bytes.get(image_id, now.size) != now.size:
            return CHANGED
        return None

    def tar_changed(self, key: str) -> bool:
        entry = self.ledger.files.get(key)
        now = self.listing.get(key)
        return entry is None or now is None or (now.size, now.tag) != (entry.size, entry.tag)

    def __post_init__(self) -> None:
        self._by_uri = {self.input.uri(e.key): e for e in self.ledger.files.values()}


def load_source(out_uri: str, s3_endpoint: str | None) -> Source:
    """Read OUT's report and ledger and list its input; ``ConfigError`` when OUT has no report."""
    out = open_store(out_uri, s3_endpoint)
    if not out.exists(ACTIONS_KEY):
        raise ConfigError(
            f"{out.uri(ACTIONS_KEY)} does not exist: run `facesieve run INPUT --out {out_uri}` "
            "(or `facesieve clean`) first"
        )
    ledger = read_ledger(out)
    if ledger is None:
        raise ConfigError(f"{out_uri} has a report but no ledger/files.parquet")
    follow = _run_setting(out, "follow_external_links")
    store = open_store(ledger.input_uri, s3_endpoint, follow_external_links=bool(follow))
    if not store.root_exists():
        raise ConfigError(f"the input {ledger.input_uri} of this run does not exist any more")
    rows = pq.read_table(io.BytesIO(out.read_bytes(ACTIONS_KEY)), columns=_COLUMNS).to_pylist()
    report_sha: dict[str, str] = {}
    report_bytes: dict[str, int] = {}
    if out.exists(STATE_KEY):
        state = pq.read_table(io.BytesIO(out.read_bytes(STATE_KEY)))
        cols = ["image_id", "bytes", "sha256"]
        for image_id, size, sha in zip(*(state.column(c).to_pylist() for c in cols), strict=True):
            if sha:
                report_sha[image_id] = sha
            if size is not None:
                report_bytes[image_id] = size
    listing = {o.key: o for o in store.list() if o.problem is None}
    tars = sum(1 for s in ledger.shards.values() if s.kind == TAR)
    log.info(
        "apply: %d action rows from %s, input %s (%s, %d files, %d tars)",
        len(rows),
        out.root_uri,
        store.root_uri,
        ledger.layout,
        len(ledger.files),
        tars,
    )
    return Source(out, store, ledger, rows, report_sha, report_bytes, listing)


def _run_setting(out: Store, name: str) -> Any:
    """A ``source`` setting of the run that wrote OUT (``run.json``), or None."""
    if not out.exists("run.json"):
        return None
    try:
        info = json.loads(out.read_bytes("run.json"))
    except (UnicodeDecodeError, json.JSONDecodeError):  # a damaged run.json: the default
        return None
    section = info.get("config", {}).get("source", {}) if isinstance(info, dict) else {}
    return section.get(name) if isinstance(section, dict) else None
