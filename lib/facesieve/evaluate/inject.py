"""A copy of labeled datasets with known, injected problems, and the truth about each file.

Kinds of injected file (``truth.json`` maps each copied file's path to its kind):
- ``moved``: an image placed under another label (mislabeled): of the same source dataset
  (``mislabel_scope="within"``, the hard case: similar people, same capture conditions) or of
  another source (``"across"``);
- ``swapped``: two images of two labels exchanged (each is mislabeled; ``with`` names the other
  half): a person must see both halves to fix the pair;
- ``near_copy``: an edited copy of an original in the same folder, one edit of
  ``evaluate.edits`` each, in turn (near_duplicate of its source);
- ``exact_copy``: a byte-identical copy under another name (exact_duplicate of its source);
- ``refiled``: a copy of an original (byte-identical or edited) filed under another label: a
  duplicate, and a labelling problem that concerns both halves;
- ``corrupt``: a truncated image (decode_error); ``no_face``: a picture with no face.
Everything else is ``original``. Originals chosen for copies are never also moved, so each truth
has one unambiguous answer.

Identities are split into a ``calibration`` and a ``test`` part by a hash of their source and
name (``split_of``), so thresholds can be chosen on one part and reported on the other: the same
identity is always in the same part, whatever else is in the folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from facesieve.errors import ConfigError
from facesieve.evaluate.edits import EDITS, apply_edit
from facesieve.schema import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)
TRUTH = "truth.json"
PARTS = ("calibration", "test")
SCOPES = ("within", "across")


@dataclass(frozen=True)
class EvalOptions:
    min_images: int = 1
    mislabel_rate: float = 0.10
    mislabel_scope: str = "within"  # within | across
    swap_rate: float = 0.01  # share of images in swapped pairs
    refile_rate: float = 0.01  # copies of a photo filed under another label, as a share
    near_dup_rate: float = 0.03
    exact_dup_rate: float = 0.02
    corrupt_rate: float = 0.01
    no_face_rate: float = 0.01
    photo_copy_rate: float = 0.5  # photo collections: share of photos given an edited copy
    inject: bool = True
    seed: int = 0

    def validate(self, sources: int | None = None) -> None:
        """Rates in range; with ``sources`` (labeled folders), whether the scope can apply."""
        rates = (self.mislabel_rate, self.swap_rate, self.refile_rate, self.near_dup_rate,
                 self.exact_dup_rate, self.corrupt_rate, self.no_face_rate,
                 self.photo_copy_rate)  # fmt: skip
        if any(not 0.0 <= r <= 1.0 for r in rates):
            raise ConfigError("every injection rate must lie in [0, 1]")
        if self.mislabel_rate + self.swap_rate + self.refile_rate + self.near_dup_rate > 0.9:
            raise ConfigError("moved, swapped, refiled and copied shares must leave originals")
        if self.mislabel_scope not in SCOPES:
            raise ConfigError(f"mislabel scope must be within or across, not {self.mislabel_scope}")
        if self.mislabel_scope == "across" and sources is not None and sources < 2:
            raise ConfigError("--mislabel-scope across needs two or more LABELED_DIRs")


def split_of(source: str, name: str) -> str:
    """``calibration`` or ``test`` for an identity (or a photo) of a source, by a stable hash."""
    h = hashlib.blake2b(f"{source}/{name}".encode(), digest_size=2).digest()
    return PARTS[h[0] % 2]


def identities(root: Path, min_images: int, part: str | None) -> dict[str, list[Path]]:
    """label -> image files of ``root``'s identities with ``min_images`` images in ``part``."""
    found = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if part is not None and split_of(root.name, d.name) != part:
            continue
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if len(files) >= min_images:
            found[d.name] = files
    return found


def no_face_picture(rng: random.Random, size: int = 200) -> bytes:
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


class Writer:
    """Files of the noisy copy and their truth; a name taken in a folder gets a suffix."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.files: dict[str, dict[str, Any]] = {}

    def put(self, folder: str, name: str, data: bytes, truth: dict[str, Any]) -> str:
        stem, suffix = name.rsplit(".", 1) if "." in name else (name, "jpg")
        rel, k = f"{folder}/{stem}.{suffix}", 0
        while rel in self.files:
            k += 1
            rel = f"{folder}/{stem}-{k}.{suffix}"
        (self.data / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.data / rel).write_bytes(data)
        self.files[rel] = truth
        return rel


def start_copy(dest: Path, wanted: dict[str, Any]) -> tuple[dict[str, Any] | None, Writer]:
    """(the truth of a finished copy made as ``wanted``, or None, and a writer into an emptied
    ``dest/data`` when there is none): a copy is only rebuilt when its recipe changed."""
    marker, data_dir = dest / TRUTH, dest / "data"
    if marker.exists():
        truth = json.loads(marker.read_text())
        if all(truth.get(k) == v for k, v in wanted.items()):
            return truth, Writer(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    return None, Writer(data_dir)


def finish_copy(dest: Path, wanted: dict[str, Any], out: Writer) -> dict[str, Any]:
    truth = {**wanted, "files": out.files}
    (dest / TRUTH).write_text(json.dumps(truth, indent=0))
    log.info("noisy copy: %d files under %s", len(out.files), dest)
    return truth


def build_noisy_copy(
    sources: list[Path], dest: Path, opts: EvalOptions, part: str | None = None
) -> dict[str, Any]:
    """Write the noisy copy of ``part``'s identities (None: all) to ``dest/data`` and return
    (and save in ``dest``) its truth. A copy made with the same options is reused."""
    opts.validate(len(sources))
    wanted = {"options": asdict(opts), "sources": [str(s) for s in sources], "part": part}
    done, out = start_copy(dest, wanted)
    if done is not None:
        return done
    rng = random.Random(opts.seed)
    prefix = len(sources) > 1
    per_source = {s: identities(s, opts.min_images, part) for s in sources}
    names = {s: [(f"{s.name}__" if prefix else "") + lab for lab in ids]
             for s, ids in per_source.items()}  # fmt: skip
    for src, ids in per_source.items():
        _inject_source(out, src, ids, names, opts, rng, prefix)
    return finish_copy(dest, wanted, out)


def _inject_source(
    out: Writer,
    src: Path,
    ids: dict[str, list[Path]],
    names: dict[Path, list[str]],
    opts: EvalOptions,
    rng: random.Random,
    prefix: bool,
) -> None:
    pre = f"{src.name}__" if prefix else ""
    items = [(pre + label, f) for label, files in ids.items() for f in files]
    n = len(items)
    if n == 0:
        return
    own = [pre + label for label in ids]
    others = [lab for s, labs in names.items() if s != src for lab in labs]
    targets = own if opts.mislabel_scope == "within" else others
    order = list(range(n))
    rng.shuffle(order)
    counts = [round(r * n) for r in (opts.mislabel_rate, opts.swap_rate, opts.refile_rate,
                                     opts.near_dup_rate, opts.exact_dup_rate)]  # fmt: skip
    counts[0] = counts[0] if len(targets) > 1 or opts.mislabel_scope == "across" else 0
    counts[1] -= counts[1] % 2
    cuts = np.cumsum([0, *counts])
    moved, swapped, refiled, near, exact = (order[cuts[i] : cuts[i + 1]] for i in range(5))
    swap_with = _swap_pairs(swapped, items)
    target_of = {i: rng.choice([t for t in targets if t != items[i][0]]) for i in moved}
    common = {"source": src.name}
    rel_of: dict[int, str] = {}
    # originals first, then the moved images: a moved file must never take the name of (or be
    # renamed by) a file of the same name in its new folder
    for i in sorted(range(n), key=lambda i: i in target_of or i in swap_with):
        label, f = items[i]
        if i in target_of:
            kind, folder = "moved", target_of[i]
        elif i in swap_with:
            kind, folder = "swapped", items[swap_with[i]][0]
        else:
            kind, folder = "original", label
        rel_of[i] = out.put(folder, f.name, f.read_bytes(),
                            {**common, "kind": kind, "true_label": label})  # fmt: skip
    for i, j in swap_with.items():
        out.files[rel_of[i]]["with"] = rel_of[j]
    kinds = list(EDITS)
    for j, i in enumerate(near):
        label, f = items[i]
        edit = kinds[j % len(kinds)]
        out.put(label, f"{f.stem}_copy{j}.jpg", apply_edit(f.read_bytes(), edit, rng),
                {**common, "kind": "near_copy", "true_label": label, "edit": edit,
                 "of": rel_of[i]})  # fmt: skip
    for j, i in enumerate(exact):
        label, f = items[i]
        out.put(label, f"{f.stem}_dup{j}{f.suffix}", f.read_bytes(),
                {**common, "kind": "exact_copy", "true_label": label, "of": rel_of[i]})  # fmt: skip
    for j, i in enumerate(refiled):
        label, f = items[i]
        rel = rel_of[i]
        folder = rng.choice([t for t in own if t != label] or [label])
        edit = "exact" if j % 2 == 0 else kinds[(j // 2) % len(kinds)]
        data = f.read_bytes() if edit == "exact" else apply_edit(f.read_bytes(), edit, rng)
        truth = {**common, "kind": "refiled", "true_label": label, "edit": edit, "of": rel}
        out.put(folder, f"{f.stem}_refiled{j}.jpg", data, truth)
    for j in range(round(opts.corrupt_rate * n)):
        label, f = items[rng.randrange(n)]
        data = f.read_bytes()
        out.put(label, f"corrupt_{j}.jpg", data[: max(len(data) * 2 // 5, 16)],
                {**common, "kind": "corrupt", "true_label": label})  # fmt: skip
    for j in range(round(opts.no_face_rate * n)):
        label = rng.choice(own)
        out.put(label, f"noface_{j}.jpg", no_face_picture(rng),
                {**common, "kind": "no_face", "true_label": label})  # fmt: skip


def _swap_pairs(chosen: list[int], items: list[tuple[str, Path]]) -> dict[int, int]:
    """Pair up ``chosen`` images of different labels, both ways (i -> j and j -> i)."""
    pairs: dict[int, int] = {}
    pool = list(chosen)
    while len(pool) >= 2:
        i = pool.pop()
        j = next((x for x in pool if items[x][0] != items[i][0]), None)
        if j is None:
            break
        pool.remove(j)
        pairs[i], pairs[j] = j, i
    return pairs
