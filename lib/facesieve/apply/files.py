"""Writing a cleaned folder-per-label tree (``folders``) or a cleaned copy (``flat``).

``folders``: a kept image stays at ``<label>/<file>``, a relabelled one moves to
``<new label>/<file>``; ``flat``: every kept file keeps its relative path. Two files that would
land on one name (a relabelled ``a/1.jpg`` and a kept ``b/1.jpg``) are told apart the same way
every time: the file already at that place keeps the name, and any other gets
``<stem>~<image_id[:8]><ext>``; the manifest says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from facesieve.apply.manifest import FAILED, STALE, Outcome
from facesieve.apply.plan import DROP, RELABEL, Planned
from facesieve.apply.source import UNKNOWN, Source
from facesieve.apply.target import FOREIGN, RETRIES, WRITTEN, Target
from facesieve.apply.transfer import transfer
from facesieve.errors import StorageError
from facesieve.work.retry import Backoff, with_retries

progress = logging.getLogger("facesieve.progress")
THREADS = 8  # concurrent copies: S3 round trips and disk waits, not CPU
IN_FLIGHT = 4 * THREADS
NOT_OURS = "{name} already holds {key}, which apply did not write: not overwritten"


def safe_label(label: str) -> bool:
    """Whether ``label`` can be one folder name that a later listing will see."""
    bad = "/" in label or "\\" in label or "\0" in label or label.startswith(".")
    return bool(label) and not bad and label.strip() == label


def place(source: Source, plans: list[Planned]) -> tuple[list[Outcome], dict[str, str]]:
    """Every image's outcome with its DEST key (for those written), and each written key's
    source key; no file is touched."""
    outcomes: list[Outcome] = []
    wanted: dict[str, list[tuple[bool, str, int]]] = {}  # dest key -> (moved, src key, index)
    for plan in plans:
        outcome = Outcome.of(plan)
        key = source.key_of(plan.uri)
        if key is None and plan.action != DROP:
            outcomes.append(outcome.with_note(UNKNOWN, STALE))
            continue
        if plan.action == DROP or key is None:
            outcomes.append(outcome)
            continue
        if (why := source.freshness(plan.image_id, plan.uri)) is not None:
            outcomes.append(outcome.with_note(why, STALE))
            continue
        dest = key
        if plan.action == RELABEL and source.layout == "folders":
            if not plan.new_label or not safe_label(plan.new_label):
                why = f"label {plan.new_label!r} cannot be a folder name; not written"
                outcomes.append(outcome.with_note(why, FAILED))
                continue
            dest = f"{plan.new_label}/{posixpath.basename(key)}"
        wanted.setdefault(dest, []).append((dest != key, key, len(outcomes)))
        outcomes.append(outcome)
    sources: dict[str, str] = {}
    for dest, claims in sorted(wanted.items()):
        for n, (_, key, index) in enumerate(sorted(claims)):
            name = dest
            if n:
                stem, ext = posixpath.splitext(dest)
                name = f"{stem}~{outcomes[index].plan.image_id[:8]}{ext}"
                first = outcomes[sorted(claims)[0][2]].plan.uri
                outcomes[index] = outcomes[index].with_note(f"name clash with {first}: renamed")
            while n and (name in wanted or name in sources):  # the new name is taken too
                stem, ext = posixpath.splitext(name)
                name = f"{stem}~{outcomes[index].plan.image_id}{ext}"
            sources[name] = key
            outcomes[index] = _at(outcomes[index], name)
    return outcomes, sources


def _at(outcome: Outcome, dest_key: str | None) -> Outcome:
    return Outcome(outcome.plan, outcome.action, dest_key, outcome.quarantine_key, outcome.note)


def write_files(
    source: Source,
    outcomes: list[Outcome],
    sources: dict[str, str],
    dest: Target,
    quarantine: Target | None,
    link: bool,
) -> list[Outcome]:
    """Write the placed files into ``dest`` (and dropped ones into ``quarantine``): what to
    write is decided here, the copies run in threads (they wait on storage, not on the CPU)."""
    dest.begin(sources)
    if quarantine is not None:
        dropped = (source.key_of(o.plan.uri) for o in outcomes if o.action == DROP)
        quarantine.begin(key for key in dropped if key)
    done = list(outcomes)
    jobs: list[_Job] = []
    for i, outcome in enumerate(outcomes):
        if outcome.dest_key is not None:
            done[i] = _claim(source, i, outcome, sources[outcome.dest_key], dest, jobs)
        elif outcome.action == DROP and quarantine is not None:
            done[i] = _claim_quarantine(source, i, outcome, quarantine, jobs)
        elif outcome.action == STALE:
            key = source.key_of(outcome.plan.uri)
            if key and dest.retain(key):
                done[i] = outcome.with_note("the copy an earlier apply wrote is kept")
    _run(source, jobs, done, link)
    return done


@dataclass(frozen=True)
class _Job:
    index: int  # of the outcome
    target: Target
    src_key: str
    dest_key: str
    digest: str


def _digest(source: Source, key: str) -> str:
    entry = source.ledger.files[key]
    text = json.dumps([source.input.uri(key), entry.size, entry.tag])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _claim(
    source: Source, i: int, outcome: Outcome, key: str, target: Target, jobs: list[_Job]
) -> Outcome:
    """The outcome of a file for DEST, and its copy job when it needs one."""
    assert outcome.dest_key is not None
    digest = _digest(source, key)
    state = target.check(outcome.dest_key, digest)
    if state == FOREIGN:
        why = NOT_OURS.format(name=target.name, key=outcome.dest_key)
        return _at(outcome, None).with_note(why, FAILED)
    if state == WRITTEN:
        if target.dry_run:
            target.done(outcome.dest_key, digest, -1)
        else:
            jobs.append(_Job(i, target, key, outcome.dest_key, digest))
    return outcome


def _claim_quarantine(
    source: Source, i: int, outcome: Outcome, target: Target, jobs: list[_Job]
) -> Outcome:
    entry = source.entry_of(outcome.plan.uri)
    if entry is None or entry.problem:
        return outcome.with_note("cannot be read: not quarantined")
    if entry.key not in source.listing:
        return outcome.with_note("not in the input now: not quarantined")
    placed = _claim(source, i, _at(outcome, entry.key), entry.key, target, jobs)
    if placed.action == FAILED:
        return outcome.with_note(f"not quarantined: {placed.note}")
    return Outcome(outcome.plan, outcome.action, None, entry.key, outcome.note)


def _run(source: Source, jobs: list[_Job], done: list[Outcome], link: bool) -> None:
    """Copy in threads, at most ``IN_FLIGHT`` at a time (a million files are not a million
    futures), recording each file or its failure as it finishes."""

    def copy(job: _Job) -> int:
        return with_retries(
            lambda: transfer(source.input, job.src_key, job.target.store, job.dest_key, link),
            f"copying {job.src_key}",
            Backoff(),
            RETRIES,
        )

    for job in {id(j.target): j for j in jobs}.values():
        getattr(job.target.store, "client", None)  # build an S3 client before the threads
    last, finished = time.monotonic(), 0
    with ThreadPoolExecutor(THREADS) as pool:
        pending: dict[Future[int], _Job] = {}
        for n, job in enumerate(jobs, 1):
            pending[pool.submit(copy, job)] = job
            if len(pending) < IN_FLIGHT and n < len(jobs):
                continue
            while pending and (len(pending) >= IN_FLIGHT or n == len(jobs)):
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    _finish(pending.pop(future), future, done)
                    finished += 1
                if time.monotonic() - last > 10 or not pending:
                    progress.info("apply: %d/%d files copied", finished, len(jobs))
                    last = time.monotonic()


def _finish(job: _Job, future: Future[int], done: list[Outcome]) -> None:
    outcome = done[job.index]
    try:
        job.target.done(job.dest_key, job.digest, future.result())
    except StorageError as exc:
        kept = job.target.retain(job.dest_key)
        note = f"{exc}; the copy an earlier apply wrote is kept" if kept else str(exc)
        if outcome.quarantine_key is not None:
            done[job.index] = Outcome(outcome.plan, outcome.action, None, None, outcome.note)
            done[job.index] = done[job.index].with_note(f"not quarantined: {note}")
        else:
            done[job.index] = _at(outcome, None).with_note(note, FAILED)
