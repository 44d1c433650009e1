"""``facesieve eval``: run the pipeline on a noisy copy and score every reason against the truth."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.evaluate.inject import EvalOptions, build_noisy_copy
from facesieve.evaluate.metrics import Scores, bcubed, detection, pairwise
from facesieve.report.step import read_actions
from facesieve.runner.pipeline import run_pipeline
from facesieve.storage import open_store

log = logging.getLogger(__name__)

__all__ = ["EvalOptions", "run_eval", "score", "scores_text"]


def _pairs(rows: list[dict[str, Any]], reason: str, rel: dict[str, str]) -> set[frozenset[str]]:
    by_id = {r["image_id"]: r["uri"] for r in rows}
    return {
        frozenset((rel[r["uri"]], rel[by_id[r["duplicate_of"]]]))
        for r in rows
        if reason in r["reasons"] and r["duplicate_of"] in by_id
    }


def score(truth: dict[str, Any], rows: list[dict[str, Any]], data_root: str) -> dict[str, Any]:
    """Precision/recall per reason and clustering scores; ``rows`` are the action rows."""
    files = truth["files"]
    root = data_root.rstrip("/") + "/"
    rel = {r["uri"]: r["uri"][len(root) :] for r in rows}
    flagged = {
        reason: {rel[r["uri"]] for r in rows if reason in r["reasons"]}
        for reason in ("mislabeled", "decode_error", "no_face", "outlier")
    }
    kinds: dict[str, set[str]] = {}
    for path, t in files.items():
        kinds.setdefault(t["kind"], set()).add(path)
    result: dict[str, Any] = {
        "images": len(rows),
        "injected": {k: len(v) for k, v in kinds.items()},
    }
    scores: dict[str, Any] = {}
    moved = kinds.get("moved", set())
    scores["mislabeled"] = detection(flagged["mislabeled"], moved).__dict__
    suggested = {rel[r["uri"]]: r["suggested_label"] for r in rows if "mislabeled" in r["reasons"]}
    right = [suggested[p] == files[p]["true_label"] for p in flagged["mislabeled"] & moved]
    scores["mislabeled"]["suggestion_accuracy"] = round(float(np.mean(right)), 4) if right else None
    source_of = {p: t["of"] for p, t in files.items() if "of" in t}
    both = {r: _pairs(rows, r, rel) for r in ("near_duplicate", "exact_duplicate")}
    other = {"near_duplicate": both["exact_duplicate"], "exact_duplicate": both["near_duplicate"]}
    for reason, kind in (("near_duplicate", "near_copy"), ("exact_duplicate", "exact_copy")):
        copies = kinds.get(kind, set())
        found = _pairs(rows, reason, rel)
        # a flag is right when both images descend from one source image; a flag between
        # images of two different source images claims those sources are duplicates, which
        # the truth cannot judge (they were in the data before injection): "source pairs"
        sources = [{source_of.get(x, x) for x in f} for f in found]
        right = [f for f, src in zip(found, sources, strict=True) if len(src) == 1]
        source_pairs = len(found) - len(right)
        # found: the copy sits in a flagged duplicate pair. Either reason counts: the keeper of
        # a byte-identical group can itself be a near duplicate of a fourth image
        hit = {x for f in found | other[reason] for x in f}
        recall = sum(1 for p in copies if p in hit) / len(copies) if copies else 1.0
        precision = len(right) / len(found) if found else 1.0
        scores[reason] = {
            **Scores.of(precision, recall).__dict__,
            "flagged_pairs": len(found),
            "source_pairs": source_pairs,
            "precision_without_source_pairs": round(
                len(right) / max(len(found) - source_pairs, 1), 4
            ),
        }
    scores["decode_error"] = detection(
        flagged["decode_error"], kinds.get("corrupt", set())
    ).__dict__
    scores["no_face"] = detection(flagged["no_face"], kinds.get("no_face", set())).__dict__
    result["scores"] = scores
    # what was flagged on files nobody touched: real problems of the source data, or errors
    untouched = kinds.get("original", set())
    copied_from = {files[p]["of"] for p in files if "of" in files[p]}
    result["flagged_untouched"] = {
        reason: sorted(
            p
            for p in ({rel[r["uri"]] for r in rows if reason in r["reasons"]} & untouched)
            - copied_from
        )
        for reason in (
            "mislabeled",
            "outlier",
            "near_duplicate",
            "exact_duplicate",
            "no_face",
            "low_quality",
            "label_has_multiple_identities",
            "identity_split_across_labels",
        )
    }
    # clustering: subject faces of originals and moved images, against their true identity
    keep = [
        r
        for r in rows
        if rel[r["uri"]] in files
        and files[rel[r["uri"]]]["kind"] in ("original", "moved")
        and r["cluster_id"] is not None
    ]
    true = np.array([files[rel[r["uri"]]]["true_label"] for r in keep])
    got = np.array([r["cluster_id"] for r in keep], np.int64)
    if len(keep):
        result["clustering"] = {
            "faces": len(keep),
            "bcubed": bcubed(true, got).__dict__,
            "pairwise": pairwise(true, got).__dict__,
            "unclustered": int((got < 0).sum()),
        }
    return result


def run_eval(
    sources: list[str],
    work: str,
    config: Config,
    opts: EvalOptions,
    show_progress: bool | None = None,
) -> dict[str, Any]:
    work_dir = Path(work)
    missing = [src for src in sources if not Path(src).is_dir()]
    if missing:
        raise ConfigError(
            f"not a folder: {', '.join(missing)} (LABELED_DIR is ROOT/<label>/<image>)"
        )
    started = time.perf_counter()
    if opts.inject:
        truth = build_noisy_copy([Path(s) for s in sources], work_dir, opts)
        data_root = str((work_dir / "data").resolve())
    else:
        if len(sources) != 1:
            raise ConfigError("--no-inject takes exactly one LABELED_DIR")
        data_root = str(Path(sources[0]).resolve())
        truth = None
    prepared = time.perf_counter() - started
    result = run_pipeline(data_root, str(work_dir / "out"), config, show_progress=show_progress)
    rows = read_actions(open_store(str(work_dir / "out"))).to_pylist()
    if truth is not None:
        report = score(truth, rows, data_root)
    else:
        report = {"images": len(rows), "reasons": result.info["report"]["reasons"]}
        labeled = [r for r in rows if r["cluster_id"] is not None and r["label"] is not None]
        if labeled:
            true = np.array([r["label"] for r in labeled])
            got = np.array([r["cluster_id"] for r in labeled], np.int64)
            report["clustering_vs_labels"] = {
                "bcubed": bcubed(true, got).__dict__,
                "pairwise": pairwise(true, got).__dict__,
            }
    report["timings"] = {"prepare_s": round(prepared, 1), "pipeline_s": round(result.seconds, 1)}
    cluster = result.info.get("cluster") or {"clusters": 0, "noise": 0}
    report["cluster"] = {"clusters": cluster["clusters"], "noise": cluster["noise"]}
    report["report"] = str(work_dir / "out" / "report" / "index.html")
    (work_dir / "eval.json").write_text(json.dumps(report, indent=1))
    return report


def scores_text(report: dict[str, Any]) -> str:
    lines = [f"images: {report['images']}"]
    for reason, s in report.get("scores", {}).items():
        extra = "".join(f"  {k} {v}" for k, v in s.items() if k not in ("precision", "recall", "f"))
        lines.append(
            f"{reason:16s} precision {s['precision']:.4f}  recall {s['recall']:.4f}"
            f"  F {s['f']:.4f}{extra}"
        )
    if "reasons" in report:
        lines.append("flagged: " + ", ".join(f"{k} {v}" for k, v in report["reasons"].items()))
    c = report.get("clustering") or report.get("clustering_vs_labels")
    if c:
        b, p = c["bcubed"], c["pairwise"]
        lines.append(
            f"clustering: BCubed P {b['precision']:.4f} R {b['recall']:.4f} "
            f"F {b['f']:.4f}; pairwise P {p['precision']:.4f} R {p['recall']:.4f} "
            f"F {p['f']:.4f}"
        )
    for reason, paths in report.get("flagged_untouched", {}).items():
        if paths:
            lines.append(f"flagged on untouched files, {reason}: {len(paths)}")
    lines.append(f"report: {report['report']}")
    return "\n".join(lines)
