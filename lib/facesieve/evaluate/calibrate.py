"""Thresholds chosen on the calibration part of ``facesieve eval``, then judged on the test part.

The cleaning rules are re-applied in-process to a finished output root with other thresholds
(the embeddings, graph and clusters do not depend on them, and every near-duplicate pixel score
is kept in ``report/pixel_scores.parquet``, so no image is read again). Each threshold is swept
on its own, the others at their configured values, and the value with the best F-score of the
reason it governs is kept (ties: the value nearest the configured one). Only the calibration
part's truth is looked at; the test part is scored once, with whatever comes out.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from facesieve.clean.inputs import CleanInputs, load_inputs
from facesieve.clean.pixel_cache import load_scores
from facesieve.clean.rules import decide
from facesieve.config import CleanConfig, Config
from facesieve.evaluate.metrics import Scores
from facesieve.evaluate.score import score
from facesieve.index.manifest import read_manifest
from facesieve.report.step import cluster_mode
from facesieve.storage import open_store

log = logging.getLogger(__name__)

# threshold -> (values tried, its (precision, recall) in the scores). Near-duplicate precision
# leaves out pairs of two source images, which the truth cannot judge (the source data holds
# duplicates of its own: counting them as wrong would push the threshold up for no reason).
SWEEPS: dict[str, tuple[np.ndarray, Callable[[dict[str, Any]], tuple[float, float]]]] = {
    "near_dup_min_pixel": (
        np.round(np.arange(0.90, 0.9951, 0.005), 3),
        lambda s: (s["near_duplicate"]["precision_without_source_pairs"],
                   s["near_duplicate"]["recall"]),
    ),
    "mislabel_min_cosine": (
        np.round(np.arange(0.25, 0.601, 0.05), 2),
        lambda s: (s["mislabeled"]["precision"], s["mislabeled"]["recall"]),
    ),
    "outlier_max_own": (
        np.round(np.arange(0.0, 0.301, 0.05), 2),
        lambda s: (s["mislabeled_or_outlier"]["precision"], s["mislabeled_or_outlier"]["recall"]),
    ),
}  # fmt: skip
LABEL_ONLY = {"mislabel_min_cosine", "outlier_max_own"}


class Rescorer:
    """One output root of a noisy copy, loaded once, decided and scored with any thresholds."""

    def __init__(self, out_dir: Path, data_root: str, truth: dict[str, Any], config: Config):
        self.out = open_store(str(out_dir))
        manifest = read_manifest(self.out)
        shards = sorted(manifest.shards) if manifest is not None and manifest.total else []
        self.inp: CleanInputs = load_inputs(self.out, shards)
        self.mode = cluster_mode(self.out, shards, self.inp)
        self.max_pixels = config.source.max_pixels
        self.known = load_scores(self.out, self.max_pixels)
        self.config, self.truth, self.data_root = config, truth, data_root

    def __call__(self, clean: CleanConfig) -> dict[str, Any]:
        d = decide(self.inp, clean, self.mode, self.config.run.s3_endpoint, self.max_pixels,
                   self.known)  # fmt: skip
        return score(self.truth, d.actions.to_pylist(), self.data_root)


def calibrate(rescore: Rescorer, labeled: bool) -> tuple[CleanConfig, dict[str, Any]]:
    """The thresholds with the best F-score on this (calibration) part, and the sweep."""
    base = rescore.config.clean
    chosen: dict[str, float] = {}
    sweep: dict[str, Any] = {}
    for name, (values, read) in SWEEPS.items():
        if name in LABEL_ONLY and not labeled:
            continue
        current = float(getattr(base, name))
        tried = []
        for v in values:
            p, r = read(rescore(dataclasses.replace(base, **{name: float(v)}))["scores"])
            tried.append((float(v), p, r, Scores.of(p, r).f))
        best = max(tried, key=lambda t: (t[3], -abs(t[0] - current)))
        chosen[name] = best[0]
        sweep[name] = {"chosen": best[0], "configured": current,
                       "tried": [dict(zip(("value", "precision", "recall", "f"), t, strict=True))
                                 for t in tried]}  # fmt: skip
        log.info("calibration: %s = %s (F %.4f; configured %s)", name, best[0], best[3], current)
    return dataclasses.replace(base, **chosen), sweep
