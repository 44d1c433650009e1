"""The final action of every image: the report's action, unless a person decided otherwise.

A pure function of the action rows and the decisions, so that what ``apply`` writes can be
checked without touching a file. ``review`` is what a report says when it is not sure enough to
act: without a decision the image is kept as it is (the dataset loses nothing a person has not
looked at). ``relabel`` without a suggested label, or to the label the image already has, is a
keep. In an unlabeled layout (flat) there is no label to change: a relabel is kept in place and
noted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from facesieve.apply.decisions import ReviewDecision

KEEP, DROP, RELABEL, REVIEW = "keep", "drop", "relabel", "review"
REPORT, DECISION = "report", "decision"


@dataclass(frozen=True)
class Planned:
    """What happens to one image: ``action`` is keep, drop or relabel (never review)."""

    image_id: str
    uri: str
    label: str | None  # the label it has now
    action: str
    new_label: str | None  # its label in the cleaned dataset (None when dropped or unlabeled)
    chosen_by: str  # report | decision
    report_action: str
    reasons: tuple[str, ...]  # the report's reasons
    note: str | None = None  # why the final action is not simply the report's


@dataclass(frozen=True)
class Plan:
    images: list[Planned]
    unknown_decisions: list[str]  # image ids decided about that the report does not hold


def plan_actions(
    rows: Iterable[Mapping[str, Any]],
    decisions: Mapping[str, ReviewDecision],
    labeled: bool = True,
) -> Plan:
    """One ``Planned`` per action row (in row order), and the decisions that matched nothing."""
    images = [_one(row, decisions.get(row["image_id"]), labeled) for row in rows]
    known = {p.image_id for p in images}
    unknown = sorted(i for i in decisions if i not in known)
    return Plan(images, unknown)


def _one(row: Mapping[str, Any], decision: ReviewDecision | None, labeled: bool) -> Planned:
    label = row.get("label")
    report_action = row["action"]
    base = Planned(
        image_id=row["image_id"],
        uri=row["uri"],
        label=label,
        action=KEEP,
        new_label=label,
        chosen_by=DECISION if decision else REPORT,
        report_action=report_action,
        reasons=tuple(row.get("reasons") or ()),
    )
    if decision is not None:
        action, target, note = decision.action, decision.label, decision.note
        if note:
            note = f"decision: {note}"
    else:
        action, target, note = report_action, row.get("suggested_label"), None
        if action == REVIEW:
            return _with(base, KEEP, label, "review without a decision: kept")
    if action == DROP:
        return _with(base, DROP, None, note)
    if action == RELABEL:
        if not labeled:
            return _with(base, KEEP, label, "relabel in an unlabeled layout: kept in place")
        if not target:
            return _with(base, KEEP, label, "relabel without a suggested label: kept")
        if target == label:
            return _with(base, KEEP, label, note or "relabel to its own label: kept")
        return _with(base, RELABEL, target, note)
    return _with(base, KEEP, label, note)


def _with(base: Planned, action: str, new_label: str | None, note: str | None) -> Planned:
    return replace(base, action=action, new_label=new_label, note=note)
