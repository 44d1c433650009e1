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

from facesieve.apply.manifest import FAILED, STALE, Outcome
from facesieve.apply.plan import DROP, RELABEL, Planned
from facesieve.apply.source import Source
from facesieve.apply.target import FOREIGN, RETRIES, Target
from facesieve.apply.transfer import transfer
from facesieve.errors import StorageError
from facesieve.work.retry import Backoff, with_retries

progress = logging.getLogger("facesieve.progress")
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
        if plan.action == DROP or key is None:
            outcomes.append(outcome if key else outcome.with_note("not in the ledger"))
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
    """Write the placed files into ``dest`` (and dropped ones into ``quarantine``)."""
    dest.begin(sources)
    if quarantine is not None:
        quarantine.begin(source.key_of(o.plan.uri) or "" for o in outcomes if o.action == DROP)
    done, last, total = [], time.monotonic(), len(outcomes)
    for n, outcome in enumerate(outcomes, 1):
        if outcome.dest_key is not None:
            outcome = _write(source, outcome, sources[outcome.dest_key], dest, link, "DEST")
        elif outcome.action == DROP and quarantine is not None:
            outcome = _quarantine(source, outcome, quarantine, link)
        elif outcome.action == STALE:
            key = source.key_of(outcome.plan.uri)
            if key and dest.retain(key):
                outcome = outcome.with_note("the copy an earlier apply wrote is kept")
        done.append(outcome)
        if time.monotonic() - last > 10 or n == total:
            progress.info("apply: %d/%d images", n, total)
            last = time.monotonic()
    return done


def _digest(source: Source, key: str) -> str:
    entry = source.ledger.files[key]
    text = json.dumps([source.input.uri(key), entry.size, entry.tag])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _write(
    source: Source, outcome: Outcome, key: str, target: Target, link: bool, name: str
) -> Outcome:
    dest_key = outcome.dest_key or key
    try:
        state = target.put(
            dest_key,
            _digest(source, key),
            lambda: with_retries(
                lambda: transfer(source.input, key, target.store, dest_key, link),
                f"copying {key}",
                Backoff(),
                RETRIES,
            ),
        )
    except StorageError as exc:
        kept = "; the copy an earlier apply wrote is kept" if target.retain(dest_key) else ""
        return _at(outcome, None).with_note(f"{exc}{kept}", FAILED)
    if state == FOREIGN:
        why = NOT_OURS.format(name=name, key=dest_key)
        return _at(outcome, None).with_note(why, FAILED)
    return outcome


def _quarantine(source: Source, outcome: Outcome, target: Target, link: bool) -> Outcome:
    entry = source.entry_of(outcome.plan.uri)
    if entry is None or entry.problem:
        return outcome.with_note("cannot be read: not quarantined")
    key = entry.key
    if key not in source.listing:
        return outcome.with_note("not in the input now: not quarantined")
    placed = _write(source, _at(outcome, key), key, target, link, "the quarantine folder")
    if placed.action == FAILED:
        return outcome.with_note(f"not quarantined: {placed.note}")
    return Outcome(outcome.plan, outcome.action, None, key, outcome.note)
