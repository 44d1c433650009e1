"""``facesieve eval``: the pipeline on noisy copies, scored against their truth.

With ``split="calibrate"`` (the default) the identities of each source (and the photos of each
photo collection) are split in two by a hash (``inject.split_of``); a noisy copy of each part
is run through the whole pipeline; the thresholds are chosen on the calibration part
(``evaluate.calibrate``); the test part is scored with the configured thresholds and with the
chosen ones. Nothing about the test part is used to choose anything. ``split="test"`` runs the
test part alone with the configured thresholds; ``split="none"`` uses every identity.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from facesieve.config import Config
from facesieve.errors import ConfigError
from facesieve.evaluate.calibrate import Rescorer, calibrate
from facesieve.evaluate.inject import EvalOptions, build_noisy_copy
from facesieve.evaluate.metrics import bcubed, pairwise
from facesieve.evaluate.photos import build_photo_copy
from facesieve.evaluate.score import score
from facesieve.report.step import read_actions
from facesieve.runner.pipeline import run_pipeline
from facesieve.storage import open_store

log = logging.getLogger(__name__)

__all__ = ["SPLITS", "EvalOptions", "run_eval", "scores_text"]
SPLITS = ("calibrate", "test", "none")


def _parts(split: str) -> list[str | None]:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    return {"calibrate": ["calibration", "test"], "test": ["test"], "none": [None]}[split]


def _run_part(
    kind: str, sources: list[Path], work: Path, part: str | None, config: Config,
    opts: EvalOptions, show_progress: bool | None,
) -> tuple[dict[str, Any], Path, str, dict[str, Any]]:  # fmt: skip
    """Build, run and score one part; (scores, its work folder, data root, truth)."""
    dest = work / kind / (part or "all")
    if kind == "photos":
        truth = build_photo_copy(sources, dest, opts, part)
        config = config.with_overrides("source", layout="flat")
        config = config.with_overrides("cluster", mode="unlabeled")
    else:
        truth = build_noisy_copy(sources, dest, opts, part)
    if not truth["files"]:
        raise ConfigError(
            f"the {part or 'whole'} part of the {kind} data holds no files (identities and "
            "photos are split in two by a hash of their name): give more, or use --split none"
        )
    data_root = str((dest / "data").resolve())
    started = time.perf_counter()
    result = run_pipeline(data_root, str(dest / "out"), config, show_progress=show_progress)
    rows = read_actions(open_store(str(dest / "out"))).to_pylist()
    scores = score(truth, rows, data_root)
    scores["pipeline_s"] = round(time.perf_counter() - started, 1)
    cluster = result.info.get("cluster") or {"clusters": 0, "noise": 0}
    scores["cluster"] = {"clusters": cluster["clusters"], "noise": cluster["noise"]}
    scores["report"] = str(dest / "out" / "report" / "index.html")
    return scores, dest, data_root, truth


def run_eval(
    sources: list[str],
    work: str,
    config: Config,
    opts: EvalOptions,
    show_progress: bool | None = None,
    photos: list[str] | None = None,
    split: str = "calibrate",
) -> dict[str, Any]:
    """Every part's scores (and the calibration) as one report, also saved as WORK/eval.json."""
    work_dir = Path(work)
    missing = [s for s in [*sources, *(photos or [])] if not Path(s).is_dir()]
    if missing:
        raise ConfigError(f"not a folder: {', '.join(missing)}")
    if not sources and not photos:
        raise ConfigError("give at least one LABELED_DIR or --photos DIR")
    if not opts.inject:
        return _as_is(sources, work_dir, config, show_progress)
    report: dict[str, Any] = {"split": split, "options": dataclasses.asdict(opts)}
    for kind, dirs in (("labeled", sources), ("photos", photos or [])):
        if not dirs:
            continue
        paths = [Path(d) for d in dirs]
        parts: dict[str, Any] = {}
        folders: dict[str, tuple[Path, str, dict[str, Any]]] = {}
        for part in _parts(split):
            name = part or "all"
            parts[name], *rest = _run_part(kind, paths, work_dir, part, config, opts,
                                           show_progress)  # fmt: skip
            folders[name] = (rest[0], rest[1], rest[2])
        if split == "calibrate":
            dest, root, truth = folders["calibration"]
            chosen, sweep = calibrate(Rescorer(dest / "out", root, truth, config), kind != "photos")
            dest, root, truth = folders["test"]
            parts["test_calibrated"] = Rescorer(dest / "out", root, truth, config)(chosen)
            parts["thresholds"] = {"chosen_on_calibration": sweep}
        report[kind] = parts
    (work_dir / "eval.json").write_text(json.dumps(report, indent=1))
    return report


def _as_is(
    sources: list[str], work: Path, config: Config, show_progress: bool | None
) -> dict[str, Any]:
    """``--no-inject``: one dataset as it is, clustering scored against its labels."""
    if len(sources) != 1:
        raise ConfigError("--no-inject takes exactly one LABELED_DIR")
    data_root = str(Path(sources[0]).resolve())
    result = run_pipeline(data_root, str(work / "out"), config, show_progress=show_progress)
    rows = read_actions(open_store(str(work / "out"))).to_pylist()
    report: dict[str, Any] = {"images": len(rows), "reasons": result.info["report"]["reasons"]}
    labeled = [r for r in rows if r["cluster_id"] is not None and r["label"] is not None]
    if labeled:
        true = np.array([r["label"] for r in labeled])
        got = np.array([r["cluster_id"] for r in labeled], np.int64)
        report["clustering_vs_labels"] = {
            "bcubed": bcubed(true, got).__dict__,
            "pairwise": pairwise(true, got).__dict__,
        }
    report["report"] = str(work / "out" / "report" / "index.html")
    (work / "eval.json").write_text(json.dumps(report, indent=1))
    return report


def _fmt(s: dict[str, Any] | None, key: str = "f") -> str:
    if not s:
        return "-"
    return f"{s['precision']:.3f}/{s['recall']:.3f}"


def _line(name: str, r: dict[str, Any]) -> str:
    s = r["scores"]
    near = s["near_duplicate"]
    cells = [f"{name:28s}", f"{r['images']:6d}"]
    if "mislabeled" in s:
        m = s["mislabeled"]
        acc = m["suggestion_accuracy"]
        cells += [_fmt(m), f"{s['mislabeled_or_outlier']['recall']:.3f}",
                  "-" if acc is None else f"{acc:.3f}"]  # fmt: skip
    cells += [f"{near['precision']:.3f} ({near['precision_without_source_pairs']:.3f})/"
              f"{near['recall']:.3f} [{near['found']}/{near['copies']}]",
              _fmt(s["exact_duplicate"])]  # fmt: skip
    if "clustering" in r:
        cells.append(f"{r['clustering']['bcubed']['f']:.3f}")
    return "  ".join(cells)


def scores_text(report: dict[str, Any]) -> str:
    """The report as tables for people: one row per part and data kind, then edits."""
    if "scores" not in report and "labeled" not in report and "photos" not in report:
        lines = [f"images: {report['images']}"]
        lines.append("flagged: " + ", ".join(f"{k} {v}" for k, v in report["reasons"].items()))
        if c := report.get("clustering_vs_labels"):
            lines.append(f"clustering vs labels: BCubed F {c['bcubed']['f']:.4f}")
        lines.append(f"report: {report['report']}")
        return "\n".join(lines)
    lines = []
    for kind in ("labeled", "photos"):
        parts = report.get(kind)
        if not parts:
            continue
        head = "part / data kind               images  "
        if kind == "labeled":
            head += "mislabeled P/R  +outlier R  suggestion  "
        head += "near dup P (w/o source pairs)/R [found]  exact P/R  BCubed F"
        lines += [f"== {kind}", head]
        for name, r in parts.items():
            if name == "thresholds":
                continue
            lines.append(_line(name, r))
            for src, sr in r.get("by_source", {}).items():
                lines.append(_line(f"  {src}", sr))
        test = parts.get("test") or parts.get("all")
        if test:
            edits = test["scores"]["near_duplicate"].get("by_edit", {})
            found = ", ".join(f"{e} {v['found']}/{v['copies']}" for e, v in edits.items())
            lines.append(f"near-duplicate recall per edit ({'test' if 'test' in parts else 'all'}, "
                         f"configured thresholds): {found}")  # fmt: skip
            if "swaps" in test["scores"]:
                sw, rf = test["scores"]["swaps"], test["scores"]["refiled"]
                lines.append(
                    f"label swaps: {sw['both_halves']} of {sw['pairs']} with both halves "
                    f"flagged, {sw['one_half']} with one; refiled copies: "
                    f"{rf['duplicate_found']} of {rf['copies']} found, {rf['both_halves']} "
                    "with both halves marked duplicate_across_labels"
                )
            if test.get("labels_with_several_people"):
                lines.append("labels holding several people (untouched data): "
                             + ", ".join(test["labels_with_several_people"]))  # fmt: skip
        if "thresholds" in parts:
            chosen = parts["thresholds"]["chosen_on_calibration"]
            lines.append(
                "thresholds chosen on the calibration part: "
                + ", ".join(
                    f"{k} {v['chosen']} (configured {v['configured']})" for k, v in chosen.items()
                )
            )
        for name in ("test", "all"):
            if name in parts:
                lines.append(f"report ({name}): {parts[name]['report']}")
    return "\n".join(lines)
