"""What an apply did, image by image: ``DEST/_facesieve.manifest.parquet`` and a summary.

One row per action row of the report (every input image, also the ones dropped), so a person or
a script can answer "where did this file go, and who decided" without reading the report again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from facesieve.apply.plan import DECISION, Planned
from facesieve.apply.target import MANIFEST_KEY, SUMMARY_KEY
from facesieve.outputs import parquet_bytes
from facesieve.storage.base import Store

STALE, FAILED = "stale", "failed"  # outcomes beside keep, drop, relabel

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("dest_key", pa.string()),
        pa.field("quarantine_key", pa.string()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("chosen_by", pa.string(), nullable=False),
        pa.field("report_action", pa.string(), nullable=False),
        pa.field("reasons", pa.list_(pa.string()), nullable=False),
        pa.field("note", pa.string()),
    ]
)


@dataclass(frozen=True)
class Outcome:
    """One image after apply: its plan, where it went, and what became of it."""

    plan: Planned
    action: str  # keep | drop | relabel | stale | failed
    dest_key: str | None = None
    quarantine_key: str | None = None
    note: str | None = None

    @classmethod
    def of(cls, plan: Planned) -> Outcome:
        return cls(plan, plan.action, note=plan.note)

    def with_note(self, note: str, action: str | None = None) -> Outcome:
        joined = f"{self.note}; {note}" if self.note else note
        return replace(self, note=joined, action=action or self.action)


def manifest_table(outcomes: list[Outcome]) -> pa.Table:
    rows = [
        {
            "image_id": o.plan.image_id,
            "uri": o.plan.uri,
            "dest_key": o.dest_key,
            "quarantine_key": o.quarantine_key,
            "action": o.action,
            "label": o.plan.new_label if o.dest_key else None,
            "chosen_by": o.plan.chosen_by,
            "report_action": o.plan.report_action,
            "reasons": list(o.plan.reasons),
            "note": o.note,
        }
        for o in sorted(outcomes, key=lambda o: o.plan.uri)
    ]
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def summarize(outcomes: list[Outcome], **extra: Any) -> dict[str, Any]:
    """Counts per outcome, how many a decision chose, and the first stale and failed files."""
    actions = Counter(o.action for o in outcomes)
    stale = [o for o in outcomes if o.action == STALE]
    failed = [o for o in outcomes if o.action == FAILED]
    return {
        "images": len(outcomes),
        "actions": {k: actions.get(k, 0) for k in ("keep", "relabel", "drop", STALE, FAILED)},
        "by_decision": sum(o.plan.chosen_by == DECISION for o in outcomes),
        "review_kept": sum(_review_kept(o) for o in outcomes),
        "renamed": sum(bool(o.note and "name clash" in o.note) for o in outcomes),
        "stale_first": [{"uri": o.plan.uri, "why": o.note} for o in stale[:10]],
        "failed_first": [{"uri": o.plan.uri, "error": o.note} for o in failed[:10]],
        **extra,
    }


def _review_kept(o: Outcome) -> bool:
    return o.plan.report_action == "review" and o.plan.chosen_by != DECISION


def write_manifest(dest: Store, outcomes: list[Outcome], summary: dict[str, Any]) -> None:
    dest.write_bytes(MANIFEST_KEY, parquet_bytes(manifest_table(outcomes)))
    dest.write_bytes(SUMMARY_KEY, (json.dumps(summary, indent=2) + "\n").encode())


def summary_text(s: dict[str, Any]) -> str:
    """The one line people read, then one line per thing that needs attention."""
    a, f = s["actions"], s["files"]
    verb = "would write" if s["dry_run"] else "wrote"
    line = (
        f"apply{' (dry run)' if s['dry_run'] else ''}: {s['images']} images -> {s['dest']}: "
        f"{a['keep']} kept, {a['relabel']} relabelled, {a['drop']} dropped "
        f"({s['by_decision']} by decision, {s['review_kept']} review kept); {verb} "
        f"{f['written']} files, {f['unchanged']} unchanged, {f['removed']} removed"
    )
    lines = [line]
    if q := s.get("quarantine"):
        lines.append(f"quarantine {q['root']}: {q['written']} written, {q['unchanged']} unchanged")
    if a[STALE]:
        lines.append(
            f"STALE: {a[STALE]} file(s) changed or vanished since the report and were not "
            f"applied (first: {s['stale_first'][0]['uri']}); rerun `facesieve run`, then apply"
        )
    if s["not_in_report"]:
        lines.append(f"{s['not_in_report']} input file(s) are newer than the report: not written")
    if s["decisions"]["unknown"]:
        lines.append(f"{s['decisions']['unknown']} decision(s) name images the report lacks")
    if a[FAILED]:
        first = s["failed_first"][0]
        lines.append(f"FAILED: {a[FAILED]} file(s), first {first['uri']}: {first['error']}")
    return "\n".join(lines)
