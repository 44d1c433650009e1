"""Scoring an action list against a noisy copy's truth (``facesieve eval``)."""

from __future__ import annotations

from typing import Any

from facesieve.evaluate.score import score

ROOT = "/d"


def _row(rel: str, reasons: list[str], dup_of: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"image_id": rel, "uri": f"{ROOT}/{rel}", "label": rel.split("/")[0],
            "reasons": reasons, "duplicate_of": dup_of, "suggested_label": kw.get("suggested"),
            "cluster_id": kw.get("cluster", 0)}  # fmt: skip


def test_scores_separate_reasons_sources_and_pairs() -> None:
    files = {
        "A/1.jpg": {"kind": "original", "source": "s", "true_label": "A"},
        "A/2.jpg": {"kind": "original", "source": "s", "true_label": "A"},
        "B/1.jpg": {"kind": "original", "source": "s", "true_label": "B"},
        "B/3.jpg": {"kind": "moved", "source": "s", "true_label": "A"},
        "A/1_copy0.jpg": {
            "kind": "near_copy",
            "source": "s",
            "true_label": "A",
            "edit": "crop",
            "of": "A/1.jpg",
        },
        "B/2_refiled0.jpg": {
            "kind": "refiled",
            "source": "s",
            "true_label": "A",
            "edit": "exact",
            "of": "A/2.jpg",
        },
        "A/4.jpg": {"kind": "swapped", "source": "s", "true_label": "B", "with": "B/4.jpg"},
        "B/4.jpg": {"kind": "swapped", "source": "s", "true_label": "A", "with": "A/4.jpg"},
    }
    rows = [
        _row("A/1.jpg", []),
        _row("A/2.jpg", ["duplicate_across_labels"]),
        _row("B/1.jpg", ["near_duplicate"], "A/2.jpg"),  # two source images: unjudged
        _row("B/3.jpg", ["mislabeled"], suggested="A"),
        _row("A/1_copy0.jpg", ["near_duplicate"], "A/1.jpg"),
        _row(
            "B/2_refiled0.jpg",
            ["exact_duplicate", "mislabeled", "duplicate_across_labels"],
            "A/2.jpg",
            suggested="A",
        ),
        _row("A/4.jpg", ["mislabeled"], suggested="A"),  # wrong suggestion
        _row("B/4.jpg", []),  # the second half, missed
    ]
    r = score({"files": files}, rows, ROOT)
    s = r["scores"]
    # moved, refiled and swapped images are all under a label that is not theirs
    assert s["mislabeled"]["positives"] == 4
    assert s["mislabeled"]["precision"] == 1.0 and s["mislabeled"]["recall"] == 0.75
    assert s["mislabeled"]["suggestion_accuracy"] == round(2 / 3, 4)
    assert s["swaps"] == {"pairs": 1, "both_halves": 0, "one_half": 1}
    assert s["refiled"] == {"copies": 1, "duplicate_found": 1, "both_halves": 1}
    near = s["near_duplicate"]
    assert near["copies"] == 1 and near["found"] == 1 and near["recall"] == 1.0
    assert near["flagged_pairs"] == 2 and near["source_pairs"] == 1 and near["wrong_pairs"] == 0
    assert near["precision"] == 0.5 and near["precision_without_source_pairs"] == 1.0
    assert near["by_edit"] == {"crop": {"copies": 1, "found": 1, "recall": 1.0}}
    assert s["exact_duplicate"]["copies"] == 1 and s["exact_duplicate"]["recall"] == 1.0
    assert r["flagged_untouched"]["near_duplicate"] == ["B/1.jpg"]
