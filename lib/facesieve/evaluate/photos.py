"""A copy of unlabeled photo collections with known copies: the photo-deduplication benchmark.

Every image under each source folder (recursively) is copied flat to ``dest/data/<source>/``;
a share of the photos (``photo_copy_rate``) gets one edited copy each (``evaluate.edits``, in
turn), some get a byte-identical copy, and truncated files and pictures without a face are
added. Group photos, portraits and photos without any face are all in play: in a photo
collection a copy is a copy whoever is in it. Photos are split into calibration and test parts
by a hash of their path, as identities are (``inject.split_of``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from facesieve.evaluate.edits import EDITS, apply_edit
from facesieve.evaluate.inject import (
    EvalOptions,
    finish_copy,
    no_face_picture,
    split_of,
    start_copy,
)
from facesieve.schema import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


def photos_of(root: Path, part: str | None) -> list[Path]:
    files = sorted(
        f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
    )
    return [
        f for f in files if part is None or split_of(root.name, str(f.relative_to(root))) == part
    ]


def build_photo_copy(
    sources: list[Path], dest: Path, opts: EvalOptions, part: str | None = None
) -> dict[str, Any]:
    """Write the noisy photo collection to ``dest/data`` and return (and save) its truth."""
    opts.validate()
    wanted = {"options": asdict(opts), "sources": [str(s) for s in sources], "part": part,
              "layout": "flat"}  # fmt: skip
    done, out = start_copy(dest, wanted)
    if done is not None:
        return done
    rng = random.Random(opts.seed)
    kinds = list(EDITS)
    for src in sources:
        photos = photos_of(src, part)
        common = {"source": src.name, "true_label": None}
        rels = []
        for f in photos:
            name = str(f.relative_to(src)).replace("/", "__")
            rels.append(out.put(src.name, name, f.read_bytes(), {**common, "kind": "original"}))
        order = list(range(len(photos)))
        rng.shuffle(order)
        n_near = round(opts.photo_copy_rate * len(photos))
        n_exact = round(opts.exact_dup_rate * len(photos))
        for j, i in enumerate(order[:n_near]):
            edit = kinds[j % len(kinds)]
            truth = {**common, "kind": "near_copy", "edit": edit, "of": rels[i]}
            out.put(src.name, f"{photos[i].stem}_copy{j}.jpg",
                    apply_edit(photos[i].read_bytes(), edit, rng), truth)  # fmt: skip
        for j, i in enumerate(order[n_near : n_near + n_exact]):
            truth = {**common, "kind": "exact_copy", "of": rels[i]}
            out.put(src.name, f"{photos[i].stem}_dup{j}{photos[i].suffix}",
                    photos[i].read_bytes(), truth)  # fmt: skip
        for j in range(round(opts.corrupt_rate * len(photos))):
            data = photos[rng.randrange(len(photos))].read_bytes()
            out.put(src.name, f"corrupt_{j}.jpg", data[: max(len(data) * 2 // 5, 16)],
                    {**common, "kind": "corrupt"})  # fmt: skip
        for j in range(round(opts.no_face_rate * len(photos))):
            out.put(
                src.name, f"noface_{j}.jpg", no_face_picture(rng), {**common, "kind": "no_face"}
            )
    return finish_copy(dest, wanted, out)
