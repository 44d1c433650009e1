"""A near-duplicate evidence set from ../shared/data/faces: originals, edited copies, faces.

    python bench/neardup_data.py --work .bench/neardup

Picks originals from every kind of face data (LFW deep-funneled crops, CelebA in-the-wild photos,
Glint360K aligned crops, ORL grayscale, the small portrait sets, the unlabeled group photos),
gives chosen originals one copy per edit of ``facesieve.evaluate.edits``, runs the face engine
over everything (in-process, the pipeline's default settings) and keeps, per file, its faces
(box, landmarks, score, size, embedding) in WORK/faces.pkl with the truth in WORK/set.json.
Identities are split into a calibration and a test half by a hash of their name, so evidence
is chosen on one half and reported on the other (``bench/neardup_evidence.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import random
import time
from pathlib import Path

import numpy as np

from facesieve.config import FaceConfig
from facesieve.evaluate.edits import EDITS, apply_edit
from facesieve.evaluate.inject import split_of
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import FaceEngine

log = logging.getLogger("bench.neardup_data")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"

# source -> (data kind, identities to take, images per identity, copies per edit kind)
SOURCES = {
    "lfw": ("deep-funneled crops", 300, 8, 12),
    "celeba_subset": ("in-the-wild photos", 28, 30, 12),
    "glint360k_subset": ("aligned crops", 7, 120, 12),
    "orl_att": ("grayscale", 40, 10, 6),
    "deepface": ("portraits", 13, 10, 2),
    "five_celebrity": ("portraits", 5, 20, 2),
    "face_recognition_knn": ("portraits", 5, 10, 1),
}


def build(work: Path, seed: int) -> dict:
    rng = random.Random(seed)
    data = work / "data"
    files: dict[str, dict] = {}
    for source, (kind, n_ids, per_id, per_edit) in SOURCES.items():
        root = SHARED / "labeled" / source
        ids = sorted(p for p in root.iterdir() if p.is_dir())
        multi = [d for d in ids if len(list(d.iterdir())) >= 2] or ids
        chosen = sorted(rng.sample(multi, min(n_ids, len(multi))))
        originals = []
        for d in chosen:
            imgs = sorted(d.iterdir())
            for f in sorted(rng.sample(imgs, min(per_id, len(imgs)))):
                rel = f"{source}/{d.name}/{f.name}"
                files[rel] = {
                    "source": source,
                    "kind": kind,
                    "identity": d.name,
                    "split": split_of(source, d.name),
                    "src": str(f),
                }
                originals.append(rel)
        for edit in EDITS:
            for rel in rng.sample(originals, min(per_edit, len(originals))):
                _copy(files, data, rel, edit, rng)
    groups = sorted((SHARED / "unlabeled").rglob("*.jpg"))
    for f in groups:
        rel = f"unlabeled/{f.parent.name}/{f.name}"
        files[rel] = {
            "source": "unlabeled",
            "kind": "group photos",
            "identity": None,
            "split": split_of("unlabeled", f.name),
            "src": str(f),
        }
        for edit in EDITS:
            _copy(files, data, rel, edit, rng)
    for rel, meta in files.items():
        if "src" in meta:
            dest = data / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(Path(meta["src"]).read_bytes())
    return files


def _copy(files: dict, data: Path, rel: str, edit: str, rng: random.Random) -> None:
    meta = files[rel]
    stem = rel.rsplit(".", 1)[0]
    new = f"{stem}__{edit}.jpg"
    k = 1
    while new in files:
        k += 1
        new = f"{stem}__{edit}{k}.jpg"
    dest = data / new
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(apply_edit(Path(meta["src"]).read_bytes(), edit, rng))
    files[new] = {**{k: v for k, v in meta.items() if k != "src"}, "edit": edit, "of": rel}


def embed(work: Path, files: dict) -> dict:
    engine = FaceEngine(FaceConfig(), device="cpu")
    out: dict[str, dict] = {}
    names = sorted(files)
    t0 = time.perf_counter()
    for start in range(0, len(names), 32):
        chunk = names[start : start + 32]
        decoded = []
        for rel in chunk:
            raw = (work / "data" / rel).read_bytes()
            d = decode_image(raw, 40_000_000, len(raw))
            decoded.append(d)
        pix = [d.pixels for d in decoded if d.pixels is not None]
        faces = iter(engine.analyze(pix))
        for rel, d in zip(chunk, decoded, strict=True):
            fs = next(faces) if d.pixels is not None else []
            out[rel] = {
                "width": d.width,
                "height": d.height,
                "faces": [
                    {
                        "bbox": f.bbox,
                        "landmarks": np.asarray(f.landmarks).reshape(10),
                        "det_score": f.det_score,
                        "face_px": f.face_px,
                        "sharpness": f.sharpness,
                        "embedding": f.embedding,
                    }
                    for f in fs
                ],
            }
        if start % 640 == 0:
            log.info(
                "%d/%d images, %.1f/s",
                start + len(chunk),
                len(names),
                (start + len(chunk)) / (time.perf_counter() - t0),
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=".bench/neardup")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "set.json").exists():
        files = build(work, args.seed)
        (work / "set.json").write_text(json.dumps(files, indent=0))
    files = json.loads((work / "set.json").read_text())
    log.info("%d files (%d copies)", len(files), sum("edit" in m for m in files.values()))
    if not (work / "faces.pkl").exists():
        faces = embed(work, files)
        (work / "faces.pkl").write_bytes(pickle.dumps(faces))


if __name__ == "__main__":
    main()
