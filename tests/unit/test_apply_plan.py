"""The final action of each image (apply/plan.py) and of each WebDataset sample (samples.decide):
pure functions of the report's rows and a person's decisions."""

from __future__ import annotations

from facesieve.apply.decisions import ReviewDecision
from facesieve.apply.manifest import STALE
from facesieve.apply.plan import Planned, plan_actions
from facesieve.apply.samples import decide


def _row(image_id: str, action: str, label: str | None = "A", suggested: str | None = None):
    return {
        "image_id": image_id,
        "uri": f"/in/{label}/{image_id}.jpg",
        "label": label,
        "action": action,
        "reasons": ["why"] if action != "keep" else [],
        "suggested_label": suggested,
    }


def _by_id(plans: list[Planned]) -> dict[str, Planned]:
    return {p.image_id: p for p in plans}


def test_the_report_decides_when_nobody_did() -> None:
    rows = [
        _row("k", "keep"),
        _row("d", "drop"),
        _row("r", "relabel", suggested="B"),
        _row("v", "review", suggested="B"),
    ]
    plan = plan_actions(rows, {})
    got = _by_id(plan.images)
    assert [p.image_id for p in plan.images] == ["k", "d", "r", "v"]  # row order kept
    assert (got["k"].action, got["k"].new_label) == ("keep", "A")
    assert (got["d"].action, got["d"].new_label) == ("drop", None)
    assert (got["r"].action, got["r"].new_label) == ("relabel", "B")
    assert (got["v"].action, got["v"].new_label) == ("keep", "A")  # review is kept, not moved
    assert "review" in (got["v"].note or "")
    assert {p.chosen_by for p in plan.images} == {"report"}
    assert got["d"].reasons == ("why",) and got["d"].report_action == "drop"
    assert plan.unknown_decisions == []


def test_a_decision_replaces_the_reports_action() -> None:
    rows = [
        _row("d", "drop"),
        _row("k", "keep"),
        _row("v", "review", suggested="B"),
        _row("r", "relabel", suggested="B"),
    ]
    decisions = {
        "d": ReviewDecision("d", "keep"),
        "k": ReviewDecision("k", "drop", note="blurry"),
        "v": ReviewDecision("v", "relabel", "C"),
        "r": ReviewDecision("r", "keep"),
        "ghost": ReviewDecision("ghost", "drop"),
    }
    plan = plan_actions(rows, decisions)
    got = _by_id(plan.images)
    assert (got["d"].action, got["d"].new_label) == ("keep", "A")
    assert (got["k"].action, got["k"].note) == ("drop", "decision: blurry")
    assert (got["v"].action, got["v"].new_label) == ("relabel", "C")
    assert (got["r"].action, got["r"].new_label) == ("keep", "A")
    assert {p.chosen_by for p in plan.images} == {"decision"}
    assert got["k"].report_action == "keep"  # what the report said stays visible
    assert plan.unknown_decisions == ["ghost"]


def test_relabels_that_cannot_move_anything_are_keeps() -> None:
    rows = [
        _row("nolabel", "relabel", suggested=None),
        _row("same", "relabel", suggested="A"),
    ]
    got = _by_id(plan_actions(rows, {}).images)
    assert got["nolabel"].action == "keep" and "without a suggested label" in got["nolabel"].note
    assert got["same"].action == "keep" and got["same"].new_label == "A"
    decisions = {"f": ReviewDecision("f", "relabel", "B")}
    flat = plan_actions([_row("f", "keep", label=None)], decisions, labeled=False)
    (p,) = flat.images
    assert (p.action, p.new_label, p.chosen_by) == ("keep", None, "decision")
    assert "unlabeled" in (p.note or "")


def _member(name: str, action: str, label: str | None = "A") -> Planned:
    new = None if action == "drop" else ("B" if action == "relabel" else label)
    return Planned(name, f"/t.tar#{name}", label, action, new, "report", action, ())


def test_a_sample_follows_its_image_member() -> None:
    sample = {"1.jpg": _member("1.jpg", "keep"), "1.txt": _member("1.txt", "drop")}
    kept = decide("t.tar", sample, set(), quarantining=True)
    assert kept.kept and not kept.quarantined and kept.left_out == frozenset()
    assert kept.outcomes["1.txt"].action == "keep"  # an unsupported .txt follows its photo
    assert kept.outcomes["1.txt"].dest_key == "t.tar#1.txt"
    assert "follows" in (kept.outcomes["1.txt"].note or "")

    sample = {"2.jpg": _member("2.jpg", "drop"), "2.txt": _member("2.txt", "keep")}
    dropped = decide("t.tar", sample, set(), quarantining=True)
    assert not dropped.kept and dropped.quarantined
    assert {o.action for o in dropped.outcomes.values()} == {"drop"}
    assert dropped.outcomes["2.txt"].quarantine_key == "t.tar#2.txt"

    moved = decide("t.tar", {"3.jpg": _member("3.jpg", "relabel")}, set(), quarantining=False)
    assert moved.kept and moved.new_label == "B" and moved.outcomes["3.jpg"].action == "relabel"

    stale = decide("t.tar", {"4.jpg": _member("4.jpg", "keep")}, {"4.jpg"}, quarantining=True)
    assert not stale.kept and not stale.quarantined
    assert stale.outcomes["4.jpg"].action == STALE and stale.outcomes["4.jpg"].dest_key is None
