"""Writing cleaned WebDataset shards: each input tar streamed into a tar of the same name.

A sample (the members sharing a key, ``a/001.jpg`` + ``a/001.json`` + ``a/001.txt``) goes or
stays as a whole, by the final action of its image member(s); members that are not images
follow their sample whatever their own row says (a ``.txt`` is an ``unsupported`` row of the
report, not a reason to drop the photo beside it). A relabelled sample gets its new label in
``KEY.json`` (other fields kept) and ``KEY.cls``; a sample with neither gains a ``KEY.json``.
One sample at a time is held in memory, never a shard: the input is read as a stream and the
output written as one (a multipart upload on S3).

A tar that changed since the report is still written, sample by sample: a sample whose image
bytes (SHA-256) or label differ from what the report saw is left out and marked stale.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import uuid
from contextlib import ExitStack
from typing import Any, BinaryIO

from facesieve.apply.manifest import FAILED, STALE, Outcome
from facesieve.apply.plan import DROP, Planned
from facesieve.apply.samples import SampleWriter, TarShard, planned_outcomes, read_samples
from facesieve.apply.source import VANISHED, Source
from facesieve.apply.target import FOREIGN, RETRIES, UNCHANGED, Target
from facesieve.errors import StorageError
from facesieve.sources.ledger import TAR
from facesieve.work.retry import Backoff, with_retries

log = logging.getLogger(__name__)
progress = logging.getLogger("facesieve.progress")


def shards_of(source: Source, plans: list[Planned]) -> tuple[list[TarShard], list[Outcome]]:
    """The tars to write, and the outcomes of rows that belong to no member (a whole tar that
    could not be read: dropped by the report)."""
    shards = {
        e.key: TarShard(e.key, source.input.uri(e.key))
        for e in source.ledger.files.values()
        if source.ledger.shards[e.shard_id].kind == TAR
    }
    by_uri = {s.uri: s for s in shards.values()}
    loose: list[Outcome] = []
    for plan in plans:
        tar_uri, _, member = plan.uri.partition("#")
        shard = by_uri.get(tar_uri)
        if shard is not None and member:
            shard.plans[member] = plan
        else:
            if shard is not None:
                shard.damaged = True
            loose.append(Outcome.of(plan))
    return sorted(shards.values(), key=lambda s: s.key), loose


def _digest(source: Source, shard: TarShard) -> str:
    """What the output tar is made of; a changed input tar is always rewritten (its samples are
    checked one by one while streaming)."""
    if source.tar_changed(shard.key):
        return "changed-" + uuid.uuid4().hex
    entry = source.ledger.files[shard.key]
    fates = sorted((p.image_id, p.action, p.new_label) for p in shard.plans.values())
    text = json.dumps([shard.uri, entry.size, entry.tag, fates])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def write_tars(
    source: Source, plans: list[Planned], dest: Target, quarantine: Target | None
) -> list[Outcome]:
    shards, outcomes = shards_of(source, plans)
    dest.begin(s.key for s in shards)
    if quarantine is not None:
        quarantine.begin(s.key for s in shards)
    for n, shard in enumerate(shards, 1):
        outcomes += _one_tar(source, shard, dest, quarantine)
        progress.info("apply: %d/%d tar shards (%s)", n, len(shards), shard.key)
    return outcomes


def _one_tar(
    source: Source, shard: TarShard, dest: Target, quarantine: Target | None
) -> list[Outcome]:
    if shard.key not in source.listing:
        return [_stale_or_drop(p, VANISHED, dest, shard.key) for p in shard.plans.values()]
    digest = _digest(source, shard)
    targets = [(t, t.check(shard.key, digest)) for t in (dest, quarantine) if t is not None]
    foreign = [t.name for t, state in targets if state == FOREIGN]
    if foreign:
        why = f"{foreign[0]} already holds {shard.key}, which apply did not write"
        return [Outcome.of(p).with_note(why, FAILED) for p in shard.plans.values()]
    writing = [t for t, state in targets if state != UNCHANGED]
    if not writing or dest.dry_run:  # unchanged, or a dry run: the outcomes as planned
        for t in writing:
            t.done(shard.key, digest, -1)
        return planned_outcomes(shard, quarantine is not None)
    try:
        outcomes, sizes = with_retries(
            lambda: _stream(source, shard, writing, quarantine),
            f"writing {shard.key}",
            Backoff(),
            RETRIES,
        )
    except (StorageError, tarfile.TarError, EOFError, OSError) as exc:
        why = f"cannot write {shard.key}: {exc}"
        log.error("apply: %s", why)
        if any([t.retain(shard.key) for t in writing]):
            why += "; the tar an earlier apply wrote is kept"
        return [Outcome.of(p).with_note(why, FAILED) for p in shard.plans.values()]
    for t in writing:
        t.done(shard.key, digest, sizes[id(t)])
    return outcomes


def _stale_or_drop(plan: Planned, why: str, dest: Target, key: str) -> Outcome:
    if plan.action == DROP:
        return Outcome.of(plan)
    kept = " (the tar an earlier apply wrote is kept)" if dest.retain(key) else ""
    return Outcome.of(plan).with_note(why + kept, STALE)


def _stream(
    source: Source, shard: TarShard, writing: list[Target], quarantine: Target | None
) -> tuple[list[Outcome], dict[int, int]]:
    """Read the input tar once, writing kept samples to DEST and dropped ones to quarantine
    (each only when it needs writing)."""
    with ExitStack() as stack:
        raw = stack.enter_context(source.input.open_read(shard.key))
        tin = stack.enter_context(tarfile.open(fileobj=raw, mode="r|*"))
        counters: dict[int, _Counted] = {}
        tars: dict[int, tarfile.TarFile] = {}
        for t in writing:
            counters[id(t)] = _Counted(stack.enter_context(t.store.open_write(shard.key)))
            tars[id(t)] = tarfile.open(fileobj=counters[id(t)], mode="w|")  # noqa: SIM115
        dest_tar = tars.get(id(writing[0])) if writing[0] is not quarantine else None
        q_tar = tars.get(id(quarantine)) if quarantine is not None else None
        samples = SampleWriter(source, shard, dest_tar, q_tar, quarantine is not None)
        try:
            try:
                for sample in read_samples(tin):
                    samples.add(sample)
            except (tarfile.TarError, EOFError) as exc:
                if not shard.damaged:
                    raise
                log.warning("apply: %s is damaged (as the report found): %s", shard.key, exc)
            outcomes = samples.finish()
            for tar in tars.values():
                tar.close()  # the end-of-archive blocks, before the stores commit
        except BaseException:
            for counted in counters.values():
                counted.dead = True  # an abandoned tar writer must not write into the next try
            raise
    return outcomes, {k: c.size for k, c in counters.items()}


class _Counted(io.RawIOBase):
    """A write stream that counts its bytes (the size recorded for the output tar)."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner, self.size, self.dead = inner, 0, False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.dead:  # the write failed and was abandoned: swallow what a finalizer flushes
            return len(data)
        self._inner.write(data)
        self.size += len(data)
        return len(data)
