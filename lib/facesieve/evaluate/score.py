"""Scores of an action list against the truth of a noisy copy: per reason, data kind and edit.

Each source folder is a data kind and gets its own scores; near copies are also scored per edit.
Mislabeled and outlier are scored apart and together (``mislabeled_or_outlier``: a moved image
flagged for either reason is found). Duplicate flags between two images that descend from two
different source images are counted apart (``source_pairs``): they claim the source data held
duplicates already, which the truth cannot judge (Glint360K and CelebA do hold many).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from facesieve.evaluate.metrics import Scores, bcubed, detection, pairwise

UNTOUCHED_REASONS = (
    "mislabeled",
    "outlier",
    "near_duplicate",
    "exact_duplicate",
    "no_face",
    "low_quality",
    "label_has_multiple_identities",
    "identity_split_across_labels",
    "duplicate_across_labels",
)


def _dup_pairs(rows: list[dict[str, Any]], reason: str, rel: dict[str, str]) -> set[frozenset]:
    by_id = {r["image_id"]: r["uri"] for r in rows}
    return {
        frozenset((rel[r["uri"]], rel[by_id[r["duplicate_of"]]]))
        for r in rows
        if reason in r["reasons"] and r["duplicate_of"] in by_id
    }


def _duplicates(
    files: dict[str, Any], rows: list[dict[str, Any]], rel: dict[str, str], edits: bool
) -> dict[str, Any]:
    source_of = {p: t["of"] for p, t in files.items() if "of" in t}
    near_kinds = {p for p, t in files.items() if t["kind"] == "near_copy"
                  or (t["kind"] == "refiled" and t["edit"] != "exact")}  # fmt: skip
    exact_kinds = {p for p, t in files.items() if t["kind"] == "exact_copy"
                   or (t["kind"] == "refiled" and t["edit"] == "exact")}  # fmt: skip
    found = {r: _dup_pairs(rows, r, rel) for r in ("near_duplicate", "exact_duplicate")}
    either = {x for pairs in found.values() for f in pairs for x in f}
    out: dict[str, Any] = {}
    injected = near_kinds | exact_kinds
    for reason, copies in (("near_duplicate", near_kinds), ("exact_duplicate", exact_kinds)):
        pairs = found[reason]
        right = [f for f in pairs if len({source_of.get(x, x) for x in f}) == 1]
        wrong = [f for f in pairs if f not in right and f & injected]  # a copy, paired wrongly
        source_pairs = len(pairs) - len(right) - len(wrong)  # two source images: unjudged
        # found: the copy sits in a flagged duplicate pair of either reason (the kept copy of a
        # byte-identical group can itself be a near copy of another image)
        hits = sum(p in either for p in copies)
        recall = hits / len(copies) if copies else 1.0
        precision = len(right) / len(pairs) if pairs else 1.0
        out[reason] = {
            **Scores.of(precision, recall).__dict__,
            "copies": len(copies),
            "found": hits,
            "flagged_pairs": len(pairs),
            "source_pairs": source_pairs,
            "wrong_pairs": len(wrong),
            "precision_without_source_pairs": round(
                len(right) / max(len(right) + len(wrong), 1), 4
            ),
        }
    if edits:
        per: dict[str, list[bool]] = defaultdict(list)
        for p in near_kinds:
            per[files[p]["edit"]].append(p in either)
        out["near_duplicate"]["by_edit"] = {
            e: {"copies": len(v), "found": sum(v), "recall": round(float(np.mean(v)), 4)}
            for e, v in sorted(per.items())
        }
    return out


def _labels(files: dict[str, Any], rows: list[dict[str, Any]], rel: dict[str, str]) -> dict:
    # filed under a label that is not theirs: moved, swapped, and refiled copies
    wrong = {p for p, t in files.items() if t["kind"] in ("moved", "swapped", "refiled")}
    flag = {
        reason: {rel[r["uri"]] for r in rows if reason in r["reasons"]}
        for reason in ("mislabeled", "outlier")
    }
    suggested = {rel[r["uri"]]: r["suggested_label"] for r in rows if "mislabeled" in r["reasons"]}
    right = [suggested[p] == files[p]["true_label"] for p in flag["mislabeled"] & wrong]
    out: dict[str, Any] = {
        "mislabeled": {
            **detection(flag["mislabeled"], wrong).__dict__,
            "suggestion_accuracy": round(float(np.mean(right)), 4) if right else None,
        },
        "outlier": detection(flag["outlier"], wrong).__dict__,
        "mislabeled_or_outlier": detection(flag["mislabeled"] | flag["outlier"], wrong).__dict__,
    }
    out["mislabeled"]["positives"] = len(wrong)
    swaps = [(p, t["with"]) for p, t in files.items() if t["kind"] == "swapped" and p < t["with"]]
    flagged = flag["mislabeled"] | flag["outlier"]
    out["swaps"] = {
        "pairs": len(swaps),
        "both_halves": sum(a in flagged and b in flagged for a, b in swaps),
        "one_half": sum((a in flagged) != (b in flagged) for a, b in swaps),
    }
    across = {rel[r["uri"]] for r in rows if "duplicate_across_labels" in r["reasons"]}
    dup = {rel[r["uri"]] for r in rows if {"near_duplicate", "exact_duplicate"} & set(r["reasons"])}
    refiles = [(p, t["of"]) for p, t in files.items() if t["kind"] == "refiled"]
    out["refiled"] = {
        "copies": len(refiles),
        "duplicate_found": sum(p in dup or o in dup for p, o in refiles),
        "both_halves": sum(p in across and o in across for p, o in refiles),
    }
    return out


def score(truth: dict[str, Any], rows: list[dict[str, Any]], data_root: str) -> dict[str, Any]:
    """Every score of the action ``rows`` of a noisy copy, overall and per source."""
    root = data_root.rstrip("/") + "/"
    rel = {r["uri"]: r["uri"][len(root) :] for r in rows}
    files = truth["files"]
    labeled = truth.get("layout") != "flat"
    result = _scores(files, rows, rel, labeled)
    sources = sorted({t["source"] for t in files.values()})
    if len(sources) > 1:
        result["by_source"] = {}
        for src in sources:
            sub = {p: t for p, t in files.items() if t["source"] == src}
            sub_rows = [r for r in rows if rel[r["uri"]] in sub]
            result["by_source"][src] = _scores(sub, sub_rows, rel, labeled)
    return result


def _scores(
    files: dict[str, Any], rows: list[dict[str, Any]], rel: dict[str, str], labeled: bool
) -> dict[str, Any]:
    kinds: dict[str, set[str]] = defaultdict(set)
    for path, t in files.items():
        kinds[t["kind"]].add(path)
    flagged = {
        reason: {rel[r["uri"]] for r in rows if reason in r["reasons"]}
        for reason in ("decode_error", "no_face", *UNTOUCHED_REASONS)
    }
    scores: dict[str, Any] = {}
    if labeled:
        scores.update(_labels(files, rows, rel))
    scores.update(_duplicates(files, rows, rel, edits=True))
    scores["decode_error"] = detection(flagged["decode_error"], kinds["corrupt"]).__dict__
    scores["no_face"] = detection(flagged["no_face"], kinds["no_face"]).__dict__
    untouched = kinds["original"] - {t["of"] for t in files.values() if "of" in t}
    result: dict[str, Any] = {
        "images": len(rows),
        "injected": {k: len(v) for k, v in sorted(kinds.items())},
        "scores": scores,
        # what was flagged on files nobody touched: real problems of the source data, or errors
        "flagged_untouched": {
            reason: sorted(flagged[reason] & untouched) for reason in UNTOUCHED_REASONS
        },
    }
    multi = {r["label"] for r in rows if "label_has_multiple_identities" in r["reasons"]
             and rel[r["uri"]] in untouched}  # fmt: skip
    result["labels_with_several_people"] = sorted(x for x in multi if x is not None)
    if labeled:
        keep = [
            r for r in rows
            if rel[r["uri"]] in files and files[rel[r["uri"]]]["kind"] in ("original", "moved",
                                                                             "swapped")
            and r["cluster_id"] is not None
        ]  # fmt: skip
        if keep:
            true = np.array([files[rel[r["uri"]]]["true_label"] for r in keep])
            got = np.array([r["cluster_id"] for r in keep], np.int64)
            result["clustering"] = {
                "faces": len(keep),
                "bcubed": bcubed(true, got).__dict__,
                "pairwise": pairwise(true, got).__dict__,
                "unclustered": int((got < 0).sum()),
            }
    return result
