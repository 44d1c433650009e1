"""One WebDataset sample at a time: its fate, its rewritten label, its outcome rows.

The members of a sample share a key (``a/001.jpg``, ``a/001.json``, ``a/001.txt``). Its image
members decide (their final actions); every other member follows the sample. A kept sample loses
only its dropped image members; a relabelled one gets the new label in ``KEY.json`` (other
fields kept) and ``KEY.cls``, or a new ``KEY.json`` when it had neither.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from facesieve.apply.manifest import FAILED, STALE, Outcome
from facesieve.apply.plan import DROP, KEEP, RELABEL, Planned
from facesieve.apply.source import CHANGED, Source
from facesieve.schema import IMAGE_EXTENSIONS
from facesieve.sources.listing import suffix

Member = tuple[tarfile.TarInfo, bytes]
SIDECARS = (".json", ".cls")


@dataclass
class TarShard:
    """One input tar: its key, URI and the plan of each member row (by member name)."""

    key: str
    uri: str
    plans: dict[str, Planned] = field(default_factory=dict)
    damaged: bool = False  # the report has a row for the tar itself: it could not be read whole


def sample_key(name: str) -> str:
    """WebDataset's key: the member path up to the first dot of its file name."""
    folder, base = posixpath.split(name)
    return posixpath.join(folder, base.partition(".")[0])


def read_samples(tar: tarfile.TarFile) -> Iterator[list[Member]]:
    """Members grouped by key (consecutive, as WebDataset reads them); regular files with safe
    names only (links, devices and unsafe paths are ``unsupported`` rows of the report). When
    the tar is damaged, the sample being read is still yielded, as the embed step read it."""
    group: list[Member] = []
    try:
        for member in tar:
            name = member.name
            if not member.isfile() or name.startswith("/") or ".." in name.split("/"):
                continue
            if group and sample_key(group[0][0].name) != sample_key(name):
                yield group
                group = []
            f = tar.extractfile(member)
            group.append((member, f.read() if f else b""))
    except (tarfile.TarError, EOFError):
        if group:
            yield group
        raise
    if group:
        yield group


def _label_of(sample: list[Member]) -> str | None:
    """The sample's label as the embed step read it (the last sidecar wins)."""
    label = None
    for info, data in sample:
        ext = suffix(info.name)
        text = data[: 1 << 16].decode("utf-8", errors="replace").strip()
        if ext == ".json":
            try:
                obj = json.loads(text)
            except json.JSONDecodeError:
                obj = None
            value = obj.get("label") if isinstance(obj, dict) else None
            label = None if value is None else str(value)
        elif ext == ".cls":
            label = text or None
    return label


def relabelled(info: tarfile.TarInfo, data: bytes, label: str) -> bytes:
    """A sidecar's bytes with ``label`` in place of its old label."""
    if suffix(info.name) == ".cls":
        return label.encode() + (b"\n" if data.endswith(b"\n") else b"")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        obj = None
    if not isinstance(obj, dict):
        obj = {}
    old = obj.get("label")
    obj["label"] = int(label) if isinstance(old, int) and label.isdigit() else label
    return json.dumps(obj, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Fate:
    """What happens to one sample: kept (minus ``left_out`` members, with ``new_label``) or
    not (and then ``quarantined`` or not), and the outcome of each member row."""

    kept: bool
    left_out: frozenset[str]
    new_label: str | None
    quarantined: bool
    outcomes: dict[str, Outcome]


def decide(shard_key: str, plans: dict[str, Planned], stale: set[str], quarantining: bool) -> Fate:
    """The fate of the sample whose member rows are ``plans`` (by member name); ``stale``
    members changed since the report and are left out."""
    images = [n for n in plans if suffix(n) in IMAGE_EXTENSIONS] or list(plans)
    kept = [n for n in images if plans[n].action != DROP and n not in stale]
    new_label = next((plans[n].new_label for n in kept if plans[n].action == RELABEL), None)
    outcomes = {n: Outcome.of(plans[n]).with_note(CHANGED, STALE) for n in stale}
    left_out = frozenset(n for n in images if n not in kept)
    if kept:
        action = RELABEL if new_label else KEEP
        for n in plans:
            if n in left_out:
                outcomes.setdefault(n, Outcome.of(plans[n]))
                continue
            plan = plans[n] if n in images else _follow(plans[n], action, new_label)
            outcomes[n] = Outcome(plan, plan.action, f"{shard_key}#{n}", None, plan.note)
        return Fate(True, left_out, new_label, False, outcomes)
    quarantined = quarantining and any(plans[n].action == DROP for n in images)
    for n in plans:
        if n not in stale:
            plan = plans[n] if n in images else _follow(plans[n], DROP, None)
            q = f"{shard_key}#{n}" if quarantined else None
            outcomes[n] = Outcome(plan, plan.action, None, q, plan.note)
    return Fate(False, left_out, None, quarantined, outcomes)


def planned_outcomes(shard: TarShard, quarantining: bool) -> list[Outcome]:
    """The outcomes of an unchanged tar, without reading it (the same as streaming it gives)."""
    groups: dict[str, dict[str, Planned]] = {}
    for name, plan in shard.plans.items():
        groups.setdefault(sample_key(name), {})[name] = plan
    outcomes: list[Outcome] = []
    for plans in groups.values():
        outcomes += decide(shard.key, plans, set(), quarantining).outcomes.values()
    return outcomes


class SampleWriter:
    """Decides each sample of one tar and writes it to DEST's tar or the quarantine's."""

    def __init__(
        self,
        source: Source,
        shard: TarShard,
        dest: tarfile.TarFile | None,
        quarantine: tarfile.TarFile | None,
        quarantining: bool,
    ) -> None:
        self.source, self.shard = source, shard
        self.dest, self.quarantine, self.quarantining = dest, quarantine, quarantining
        self.changed = source.tar_changed(shard.key)
        self.outcomes: dict[str, Outcome] = {}

    def add(self, sample: list[Member]) -> None:
        plans = {i.name: self.shard.plans[i.name] for i, _ in sample if i.name in self.shard.plans}
        stale = {n for n, p in plans.items() if self._stale(p, sample)}
        fate = decide(self.shard.key, plans, stale, self.quarantining)
        self.outcomes.update(fate.outcomes)
        if fate.kept:
            self._write_kept(sample, fate.left_out, fate.new_label)
        elif fate.quarantined and self.quarantine is not None:
            for info, data in sample:
                self.quarantine.addfile(info, io.BytesIO(data))

    def _stale(self, plan: Planned, sample: list[Member]) -> bool:
        """A member of a changed tar whose bytes or label are not what the report saw."""
        if not self.changed or plan.action == DROP:
            return False
        data = next(d for i, d in sample if i.name == plan.uri.partition("#")[2])
        seen = self.source.report_sha.get(plan.image_id)
        return seen != hashlib.sha256(data).hexdigest() or _label_of(sample) != plan.label

    def _write_kept(self, sample: list[Member], left_out: set[str], label: str | None) -> None:
        if self.dest is None:
            return
        sidecar = False
        for info, data in sample:
            if info.name in left_out:
                continue
            if label is not None and suffix(info.name) in SIDECARS:
                data, info = relabelled(info, data, label), copy.copy(info)
                info.size, sidecar = len(data), True
            self.dest.addfile(info, io.BytesIO(data))
        if label is not None and not sidecar:
            info = tarfile.TarInfo(sample_key(sample[0][0].name) + ".json")
            data = json.dumps({"label": label}, ensure_ascii=False).encode()
            info.size, info.mtime = len(data), sample[0][0].mtime
            self.dest.addfile(info, io.BytesIO(data))

    def finish(self) -> list[Outcome]:
        """Every member row's outcome; a row whose member was not in the tar is one too."""
        why = "gone from the tar since the report" if self.changed else "member not in the tar"
        for name, plan in self.shard.plans.items():
            if name not in self.outcomes:
                action = STALE if self.changed else (DROP if plan.action == DROP else FAILED)
                self.outcomes[name] = Outcome.of(plan).with_note(why, action)
        return list(self.outcomes.values())


def _follow(plan: Planned, action: str, label: str | None) -> Planned:
    """A non-image member's plan: whatever its sample's image decided."""
    note = plan.note
    if plan.action != action:
        note = f"follows its sample's image ({action})"
    return replace(plan, action=action, new_label=label or plan.label, note=note)
