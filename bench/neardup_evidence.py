"""Near-duplicate evidence on every kind of face data: copies under every edit, and hard pairs.

    python bench/neardup_data.py --work .bench/neardup        # originals, copies, faces
    python bench/neardup_evidence.py --work .bench/neardup    # scores, tables, threshold

Scores with ``facesieve.clean.pixels.same_photo_score`` (the score the clean step uses):
- every (original, edited copy) pair of the set whose faces were found (positives);
- hard pairs: two different files of one identity (or two unlabeled photos) whose best face pair
  reaches an embedding cosine of 0.6: different photos of one person, and duplicates the source
  data already held (Glint360K and CelebA hold many; the tables count them apart once confirmed
  by eye in ``bench/data/neardup_inspected.json``).
Hard pairs not confirmed as source duplicates count as different photographs (ORL's series are
different exposures by construction). The threshold is chosen on the calibration identities:
the lowest at which their precision reaches ``--precision``, over every kind but photo series
shot seconds apart (``--series``, which get a threshold of their own); the tables report the
test identities only, at that threshold or at ``--threshold``. Prints JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from facesieve.clean.duplicates import COARSE_MIN, PHOTO_MIN
from facesieve.clean.pixels import coarse_agreement, same_photo_score
from facesieve.clean.register import Picture, face_frame
from facesieve.faces.decode import decode_image
from facesieve.faces.photo import as_vectors, photo_descriptor

log = logging.getLogger("bench.neardup_evidence")
INSPECTED = Path(__file__).parent / "data" / "neardup_inspected.json"
MIN_FACE_PX, MIN_DET = 32.0, 0.6


def _usable(face: dict[str, Any]) -> bool:
    det = face["det_score"]
    return bool(face["face_px"] >= MIN_FACE_PX and (det is None or det >= MIN_DET))


def _best_faces(faces: dict, a: str, b: str) -> tuple[float, dict, dict] | None:
    fa = [f for f in faces[a]["faces"] if _usable(f)]
    fb = [f for f in faces[b]["faces"] if _usable(f)]
    if not fa or not fb:
        return None
    sims = np.stack([f["embedding"] for f in fa]) @ np.stack([f["embedding"] for f in fb]).T
    i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
    return float(sims[i, j]), fa[i], fb[j]


def pairs_of(files: dict, faces: dict, min_cosine: float) -> list[dict[str, Any]]:
    out = []
    for rel, meta in sorted(files.items()):
        if "of" in meta:
            best = _best_faces(faces, meta["of"], rel)
            out.append({"a": meta["of"], "b": rel, "copy": True, "edit": meta["edit"],
                        "kind": meta["kind"], "split": meta["split"],
                        "cos": None if best is None else best[0]})  # fmt: skip
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rel, meta in sorted(files.items()):
        if "of" not in meta:
            groups[(meta["source"], meta["identity"] or "")].append(rel)
    for rels in groups.values():
        for i, a in enumerate(rels):
            for b in rels[i + 1 :]:
                best = _best_faces(faces, a, b)
                if best is not None and best[0] >= min_cosine:
                    meta = files[a]
                    out.append({"a": a, "b": b, "copy": False, "edit": None, "kind": meta["kind"],
                                "split": meta["split"], "cos": best[0]})  # fmt: skip
    return out


class _Pictures:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.cache: dict[str, Picture] = {}

    def __call__(self, rel: str) -> Picture:
        if rel not in self.cache:
            if len(self.cache) > 512:
                self.cache.pop(next(iter(self.cache)))
            raw = (self.data / rel).read_bytes()
            dec = decode_image(raw, 40_000_000, len(raw))
            self.cache[rel] = Picture.of(dec.pixels)
        return self.cache[rel]


def score_pairs(pairs: list[dict], faces: dict, data: Path) -> None:
    pictures = _Pictures(data)
    started = time.perf_counter()
    for n, p in enumerate(pairs):
        best = _best_faces(faces, p["a"], p["b"])
        if best is None:
            p["score"] = None
            continue
        _, fa, fb = best
        p["score"] = same_photo_score(
            pictures(p["a"]), face_frame(fa["landmarks"]), pictures(p["b"]), fb["landmarks"]
        )
        if n % 500 == 0:
            log.info("%d/%d pairs, %.1f ms per pair", n, len(pairs),
                     1000 * (time.perf_counter() - started) / (n + 1))  # fmt: skip
    p_time = (time.perf_counter() - started) / max(len(pairs), 1)
    log.info("%.1f ms per pair", 1000 * p_time)


def coarse_looks(pairs: list[dict], faces: dict, data: Path) -> None:
    """The clean step's coarse look (``clean.duplicates``) for each pair: ``coarse``, the
    landmark-registered agreement at a blur of 2 px, and ``photo_sim``, the photo descriptors'
    similarity (mirror images included)."""
    pictures = _Pictures(data)
    descs: dict[str, np.ndarray] = {}

    def desc(rel: str) -> np.ndarray:
        if rel not in descs:
            raw = (data / rel).read_bytes()
            rgb = decode_image(raw, 40_000_000, len(raw)).pixels
            descs[rel] = np.frombuffer(photo_descriptor(rgb), np.uint8)
        return descs[rel]

    for p in pairs:
        best = _best_faces(faces, p["a"], p["b"])
        if best is None:
            p["coarse"] = p["photo_sim"] = None
            continue
        _, fa, fb = best
        a = pictures(p["a"])
        p["coarse"] = coarse_agreement(a, face_frame(fa["landmarks"]), pictures(p["b"]),
                                       fb["landmarks"])  # fmt: skip
        v, mirror = as_vectors(np.stack([desc(p["a"]), desc(p["b"])]))
        p["photo_sim"] = max(float(v[0] @ v[1]), float(v[0] @ mirror[1]))


def coarse_summary(pairs: list[dict], known: set[tuple[str, str]], t: float) -> dict[str, Any]:
    """What the coarse look (skip below COARSE_MIN unless photo_sim reaches PHOTO_MIN) costs in
    copies the full score confirms at ``t``, and what it saves on different photos."""
    skipped = lambda p: p["coarse"] < COARSE_MIN and p["photo_sim"] < PHOTO_MIN  # noqa: E731
    scored = [p for p in pairs if p.get("coarse") is not None and p["score"] is not None]
    copies = [p for p in scored if p["copy"] and p["score"] >= t]
    hard = [p for p in scored if not p["copy"] and (p["a"], p["b"]) not in known]
    return {
        "confirmed_copies": len(copies),
        "confirmed_copies_skipped": int(sum(bool(skipped(p)) for p in copies)),
        "different_photos": len(hard),
        "different_photos_skipped": int(sum(bool(skipped(p)) for p in hard)),
    }


def choose_threshold(
    pairs: list[dict], known: set[tuple[str, str]], precision: float, kinds: set[str] | None
) -> tuple[float, float, float]:
    """(threshold, precision, recall): the lowest threshold at which the calibration identities
    of ``kinds`` (None: every kind) reach ``precision``; copies against hard pairs that are not
    confirmed source duplicates. A false near duplicate drops a unique photo, so precision is
    the constraint and recall what the threshold then buys."""
    cal = [p for p in pairs if p["split"] == "calibration" and (p["a"], p["b"]) not in known
           and (kinds is None or p["kind"] in kinds)]  # fmt: skip
    copies = sum(p["copy"] for p in cal)
    for t in np.arange(0.90, 1.0, 0.0025):
        tp = sum(p["copy"] and p["score"] is not None and p["score"] >= t for p in cal)
        fp = sum(not p["copy"] and p["score"] is not None and p["score"] >= t for p in cal)
        if tp and tp / (tp + fp) >= precision:
            return round(float(t), 4), round(tp / (tp + fp), 4), round(tp / copies, 4)
    return 1.0, 1.0, 0.0


def tables(pairs: list[dict], t: float, known: set[tuple[str, str]]) -> dict[str, Any]:
    test = [p for p in pairs if p["split"] == "test"]
    rows: dict[str, Any] = {"threshold": t, "by_kind": {}, "by_edit": {}}
    for key, name in (("kind", "by_kind"), ("edit", "by_edit")):
        for value in sorted({p[key] for p in test if p[key] is not None}):
            sel = [p for p in test if p[key] == value]
            copies = [p for p in sel if p["copy"]]
            found = sum(p["score"] is not None and p["score"] >= t for p in copies)
            hard = [p for p in sel if not p["copy"] and p["score"] is not None]
            source = [p for p in hard if (p["a"], p["b"]) in known]
            false = sum(p["score"] >= t for p in hard if (p["a"], p["b"]) not in known)
            rows[name][value] = {
                "copies": len(copies),
                "found": found,
                "no_face": sum(p["score"] is None for p in copies),
                "recall": round(found / len(copies), 4) if copies else None,
                "hard_pairs": len(hard),
                "false_pairs": false,
                "source_duplicates_found": sum(p["score"] >= t for p in source),
                "precision": round(found / (found + false), 4) if found + false else None,
            }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=".bench/neardup")
    ap.add_argument("--min-cosine", type=float, default=0.6, help="hard pairs: face cosine")
    ap.add_argument("--threshold", type=float, help="report at this threshold instead")
    ap.add_argument("--precision", type=float, default=0.995, help="calibration precision")
    ap.add_argument(
        "--series",
        default="grayscale",
        help="data kinds of photo series shot seconds apart, calibrated on their own "
        "(default grayscale: ORL's sittings)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = Path(args.work)
    files = json.loads((work / "set.json").read_text())
    faces = pickle.loads((work / "faces.pkl").read_bytes())
    cache = work / "scores.json"
    if cache.exists():
        pairs = json.loads(cache.read_text())
    else:
        pairs = pairs_of(files, faces, args.min_cosine)
        score_pairs(pairs, faces, work / "data")
        cache.write_text(json.dumps(pairs))
    if any("coarse" not in p for p in pairs):
        coarse_looks(pairs, faces, work / "data")
        cache.write_text(json.dumps(pairs))
    known = set()
    if INSPECTED.exists():
        known = {(p["a"], p["b"]) for p in json.loads(INSPECTED.read_text()) if p["same_photo"]}
    series = set(args.series.split(",")) if args.series else set()
    kinds = {p["kind"] for p in pairs} - series
    chosen = choose_threshold(pairs, known, args.precision, kinds)
    t = args.threshold or chosen[0]
    result = tables(pairs, t, known)
    result["chosen_on_calibration"] = dict(
        zip(("threshold", "precision", "recall"), chosen, strict=True)
    )
    result["coarse_look"] = coarse_summary(pairs, known, t)
    if series:
        alone = choose_threshold(pairs, known, args.precision, series)
        result["series_chosen_on_calibration"] = dict(
            zip(("threshold", "precision", "recall"), alone, strict=True)
        )
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"chosen on the calibration identities (precision >= {args.precision}, kinds other "
        f"than {sorted(series)}): {result['chosen_on_calibration']}; "
        f"series alone: {result.get('series_chosen_on_calibration')}; tables (test) at {t}; "
        f"coarse look: {result['coarse_look']}"
    )
    for name in ("by_kind", "by_edit"):
        for value, r in result[name].items():
            print(
                f"{name[3:]:5s} {value:22s} recall {r['found']}/{r['copies']} (no face "
                f"{r['no_face']})  false pairs {r['false_pairs']}/{r['hard_pairs']}  precision "
                f"{r['precision']}  source duplicates {r['source_duplicates_found']}"
            )


if __name__ == "__main__":
    main()
