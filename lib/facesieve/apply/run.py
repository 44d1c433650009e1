"""``facesieve apply OUT --to DEST``: the cleaned dataset, written from a finished run.

The order is what makes it safe to rerun: read everything (report, ledger, input listing,
decisions, DEST's record), refuse what cannot end well (DEST inside the input or OUT, a
non-empty DEST apply never wrote), decide every image (``plan.py``), record the keys about to
be written, write what changed, remove what apply wrote before and no longer belongs, then write
the record and the manifest. The input and OUT are only read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facesieve.apply.decisions import ReviewDecision, parse_decisions
from facesieve.apply.files import place, write_files
from facesieve.apply.manifest import FAILED, Outcome, summarize, write_manifest
from facesieve.apply.plan import plan_actions
from facesieve.apply.source import Source, load_source
from facesieve.apply.target import Target
from facesieve.apply.webdataset import write_tars
from facesieve.errors import ConfigError, StorageError
from facesieve.storage import open_store, roots_overlap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyOptions:
    out: str
    dest: str
    decisions: str | None = None
    quarantine: str | None = None
    dry_run: bool = False
    link: bool = True  # hard-link kept files when input and DEST share a local filesystem
    s3_endpoint: str | None = None


@dataclass
class ApplyResult:
    summary: dict[str, Any]
    outcomes: list[Outcome]
    would_write: list[str]
    would_remove: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.summary["actions"][FAILED] else 0


def apply_dataset(opts: ApplyOptions) -> ApplyResult:
    started = time.time()
    source = load_source(opts.out, opts.s3_endpoint)
    decisions = read_decisions(opts.decisions, opts.s3_endpoint) if opts.decisions else {}
    dest_store = open_store(opts.dest, opts.s3_endpoint)
    q_store = open_store(opts.quarantine, opts.s3_endpoint) if opts.quarantine else None
    roots = {"the input": source.input.root_uri, "OUT": source.out.root_uri}
    _separate("--to", dest_store.root_uri, roots)
    if q_store is not None:
        _separate("--quarantine", q_store.root_uri, {**roots, "DEST": dest_store.root_uri})
    dest = Target.open(dest_store, opts.dry_run, "DEST")
    quarantine = Target.open(q_store, opts.dry_run, "quarantine") if q_store else None
    plan = plan_actions(source.rows, decisions, labeled=source.layout != "flat")
    if plan.unknown_decisions:
        log.warning(
            "%d decision(s) name images that are not in the report (first: %s); ignored",
            len(plan.unknown_decisions),
            plan.unknown_decisions[0],
        )
    if source.layout == "webdataset":
        outcomes = write_tars(source, plan.images, dest, quarantine)
    else:
        placed, sources = place(source, plan.images)
        outcomes = write_files(source, placed, sources, dest, quarantine, opts.link)
    would_remove = dest.stale_keys()
    removed = dest.finish()
    q_info = None
    if quarantine is not None:
        would_remove += [f"{quarantine.store.root_uri}/{k}" for k in quarantine.stale_keys()]
        q_removed = quarantine.finish()
        q_info = {"root": quarantine.store.root_uri, **quarantine.counts, "removed": q_removed}
    summary = summarize(
        outcomes,
        dest=dest_store.root_uri,
        out=source.out.root_uri,
        input=source.input.root_uri,
        layout=source.layout,
        dry_run=opts.dry_run,
        files={**dest.counts, "removed": removed},
        quarantine=q_info,
        decisions={
            "given": len(decisions),
            "unknown": len(plan.unknown_decisions),
            "unknown_first": plan.unknown_decisions[:10],
        },
        not_in_report=_not_in_report(source),
        seconds=round(time.time() - started, 2),
    )
    if not opts.dry_run:
        write_manifest(dest_store, outcomes, summary)
        if quarantine is not None:
            write_manifest(quarantine.store, [o for o in outcomes if o.quarantine_key], summary)
    return ApplyResult(summary, outcomes, dest.write_keys, would_remove)


def read_decisions(uri: str, s3_endpoint: str | None) -> dict[str, ReviewDecision]:
    """The decisions file at a local path or ``s3://`` URI."""
    try:
        if uri.startswith("s3://"):
            folder, _, name = uri.rstrip("/").rpartition("/")
            data = open_store(folder, s3_endpoint).read_bytes(name)
        else:
            data = Path(uri).expanduser().read_bytes()
    except StorageError as exc:
        raise ConfigError(f"cannot read the decisions file {uri}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the decisions file {uri}: {exc.strerror}") from exc
    return parse_decisions(data, uri)


def _separate(flag: str, root: str, others: dict[str, str]) -> None:
    """Refuse a destination inside (or holding) the input, OUT, or another destination."""
    for what, other in others.items():
        if roots_overlap(root, other):
            raise ConfigError(f"{flag} {root} must not be inside {what} {other} (or hold it)")


def _not_in_report(source: Source) -> int:
    """Input files the report does not know (added since): apply does not write them."""
    known = {source.key_of(row["uri"]) for row in source.rows}
    return sum(1 for key in source.listing if key not in known)
