"""A copy of labeled datasets with known, injected problems, and the truth about each file.

Kinds of injected file (``truth.json`` maps each copied file's path to its kind):
- ``moved``: an image placed under a random other label of the same dataset (mislabeled);
- ``near_copy``: a transformed copy of an original in the same folder: re-encoded at low
  quality, resized, cropped around the face or mirrored (near_duplicate of its source);
- ``exact_copy``: a byte-identical copy under another name (exact_duplicate of its source);
- ``corrupt``: a truncated image (decode_error);
- ``no_face``: a synthetic picture with no face (no_face).
Everything else is ``original``. Originals chosen for copies are never also moved, so each truth
has one unambiguous answer.
"""

from __future__ import annotations

import io
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from facesieve.schema import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)
TRUTH = "truth.json"


@dataclass(frozen=True)
class EvalOptions:
    min_images: int = 1
    mislabel_rate: float = 0.10
    near_dup_rate: float = 0.03
    exact_dup_rate: float = 0.02
    corrupt_rate: float = 0.01
    no_face_rate: float = 0.01
    inject: bool = True
    seed: int = 0


def _identities(root: Path, min_images: int) -> dict[str, list[Path]]:
    found = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if len(files) >= min_images:
            found[d.name] = files
    return found


def _near_copy(data: bytes, kind: str, rng: random.Random) -> bytes:
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    w, h = img.size
    if kind == "resize":
        f = rng.choice([0.6, 0.75, 1.5])
        img = img.resize((max(int(w * f), 1), max(int(h * f), 1)), Image.Resampling.LANCZOS)
    elif kind == "crop":  # a tighter frame that keeps the (centred) face
        m = rng.uniform(0.06, 0.12)
        img = img.crop((int(w * m), int(h * m), int(w * (1 - m)), int(h * (1 - m))))
    elif kind == "mirror":
        img = ImageOps.mirror(img)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.choice([40, 60, 85]) if kind == "reencode" else 90)
    return buf.getvalue()


def _no_face(rng: random.Random, size: int = 200) -> bytes:
    """A smooth gradient with a few coloured shapes: a picture, but nobody in it."""
    a = np.linspace(0, 1, size, dtype=np.float32)
    base = np.stack([np.outer(a, np.ones(size)) * rng.uniform(80, 255)] * 3, -1)
    base[..., rng.randrange(3)] = np.outer(np.ones(size), a) * rng.uniform(80, 255)
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(10, 50)
        draw.rectangle((x, y, x + r, y + r // 2), fill=tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build_noisy_copy(sources: list[Path], dest: Path, opts: EvalOptions) -> dict[str, Any]:
    """Write the noisy copy to ``dest/data`` and return (and save in ``dest``) its truth."""
    marker, data_dir = dest / TRUTH, dest / "data"
    if marker.exists():
        truth = json.loads(marker.read_text())
        if truth.get("options") == asdict(opts) and truth.get("sources") == [
            str(s) for s in sources
        ]:
            return truth
        shutil.rmtree(data_dir, ignore_errors=True)
    rng = random.Random(opts.seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    prefix = len(sources) > 1
    for src in sources:
        ids = _identities(src, opts.min_images)
        labels = list(ids)
        items = [(label, f) for label in labels for f in ids[label]]
        n = len(items)
        order = list(range(n))
        rng.shuffle(order)
        n_move = round(opts.mislabel_rate * n) if len(labels) > 1 else 0
        n_near, n_exact = round(opts.near_dup_rate * n), round(opts.exact_dup_rate * n)
        moved = set(order[:n_move])
        near = order[n_move : n_move + n_near]
        exact = order[n_move + n_near : n_move + n_near + n_exact]
        pre = f"{src.name}__" if prefix else ""
        # originals first, then the moved images: a moved file must never overwrite (or be
        # overwritten by) a file of the same name in its new folder
        for i in sorted(range(n), key=lambda i: i in moved):
            label, f = items[i]
            target = label
            if i in moved:
                target = rng.choice([x for x in labels if x != label])
            rel, k = f"{pre}{target}/{f.name}", 0
            while rel in files:
                k += 1
                rel = f"{pre}{target}/{f.stem}-{k}{f.suffix}"
            (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, data_dir / rel)
            files[rel] = {
                "kind": "moved" if i in moved else "original",
                "true_label": pre + label,
                "source": str(f),
            }
        kinds = ["reencode", "resize", "crop", "mirror"]
        for j, i in enumerate(near):
            label, f = items[i]
            rel = f"{pre}{label}/{f.stem}_copy{j}.jpg"
            (data_dir / rel).write_bytes(_near_copy(f.read_bytes(), kinds[j % 4], rng))
            files[rel] = {
                "kind": "near_copy",
                "true_label": pre + label,
                "transform": kinds[j % 4],
                "of": f"{pre}{label}/{f.name}",
            }
        for j, i in enumerate(exact):
            label, f = items[i]
            rel = f"{pre}{label}/{f.stem}_dup{j}{f.suffix}"
            shutil.copyfile(f, data_dir / rel)
            files[rel] = {
                "kind": "exact_copy",
                "true_label": pre + label,
                "of": f"{pre}{label}/{f.name}",
            }
        for j in range(round(opts.corrupt_rate * n)):
            label, f = items[rng.randrange(n)]
            data = f.read_bytes()
            rel = f"{pre}{label}/corrupt_{j}.jpg"
            (data_dir / rel).write_bytes(data[: max(len(data) * 2 // 5, 16)])
            files[rel] = {"kind": "corrupt", "true_label": pre + label}
        for j in range(round(opts.no_face_rate * n)):
            label = rng.choice(labels)
            rel = f"{pre}{label}/noface_{j}.jpg"
            (data_dir / rel).write_bytes(_no_face(rng))
            files[rel] = {"kind": "no_face", "true_label": pre + label}
    truth = {"options": asdict(opts), "sources": [str(s) for s in sources], "files": files}
    marker.write_text(json.dumps(truth, indent=0))
    log.info("noisy copy: %d files under %s", len(files), dest)
    return truth
