"""Build a small labeled dataset from the photos shipped with the model pack.

Each clearly visible face in ``players.jpg``, ``gdp.jpg`` and ``yaoming.jpg`` becomes an identity
folder holding a loose crop of the face and augmented copies (mirror, lighting, rotation, blur,
re-encoding), so the dataset has real faces, real labels and real near-duplicates. A truncated
JPEG, a text file and a picture with no face are added so the demo shows bad input being reported
rather than lost, and one photo filed under the wrong label plus one byte-identical copy give the
cleaning report label and duplicate findings. The result is deterministic.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facesieve.config import FaceConfig
from facesieve.errors import ModelError
from facesieve.faces.decode import decode_image
from facesieve.faces.engine import FaceEngine
from facesieve.faces.model_pack import bundled_photo

log = logging.getLogger(__name__)

PHOTOS = ("players.jpg", "gdp.jpg", "yaoming.jpg")
MIN_FACE_PX = 40  # smaller faces are too blurry to make a fair identity


def _crop(image: np.ndarray, box: np.ndarray, margin: float = 0.8) -> np.ndarray:
    x1, y1, x2, y2 = box
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * (1 + margin) / 2
    h, w = image.shape[:2]
    a, b = int(max(0, cx - half)), int(max(0, cy - half))
    c, d = int(min(w, cx + half)), int(min(h, cy + half))
    crop = image[b:d, a:c]
    scale = 224 / max(crop.shape[:2])  # a common size: these crops are small
    return cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)


def _variants(crop: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = crop.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-12, 12)), 1.0)
    bright = np.clip(crop.astype(np.float32) * rng.uniform(0.7, 0.85) + rng.uniform(5, 25), 0, 255)
    return [
        crop,
        crop[:, ::-1],
        bright.astype(np.uint8),
        cv2.warpAffine(crop, rot, (w, h), borderMode=cv2.BORDER_REFLECT),
        cv2.GaussianBlur(crop, (3, 3), 0.8),
    ]


def _jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def build_demo_data(root: Path) -> Path:
    """Write the demo dataset under ``root`` (folders layout) and return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    engine = FaceEngine(FaceConfig(), device="cpu")
    rng = np.random.default_rng(7)
    identities = 0
    for photo in PHOTOS:
        decoded = decode_image(bundled_photo(photo).read_bytes(), 10**8, 10**8)
        if decoded.pixels is None:
            raise ModelError(f"bundled photo {photo} does not decode: {decoded.error}")
        pixels = decoded.pixels
        det = engine.detect([pixels])[0]
        boxes = [b for b in det.boxes if max(b[2] - b[0], b[3] - b[1]) >= MIN_FACE_PX]
        boxes.sort(key=lambda b: (round(float(b[1]) / 100), float(b[0])))  # reading order
        for k, box in enumerate(boxes):
            folder = root / f"{Path(photo).stem}_{k:02d}"
            folder.mkdir(exist_ok=True)
            for n, img in enumerate(_variants(_crop(pixels, box), rng)):
                (folder / f"{n}.jpg").write_bytes(_jpeg(img, quality=92 - 6 * n))
            identities += 1
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    first = folders[0]
    good = (first / "0.jpg").read_bytes()
    # known label problems: one person's photo filed under another label, and a byte copy
    # (Yao Ming's photo has a single face, so the misfiled crop holds no one of the new label)
    yao = next(f for f in folders if f.name.startswith("yaoming"))
    (yao / "1.jpg").rename(folders[2] / "5.jpg")
    (folders[3] / "0-copy.jpg").write_bytes((folders[3] / "0.jpg").read_bytes())
    (first / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (first / "notes.txt").write_text("not an image\n")
    sky = np.tile(np.linspace(90, 220, 224, dtype=np.uint8)[:, None, None], (1, 224, 3))
    (first / "sky.jpg").write_bytes(_jpeg(sky))
    log.info("demo data: %d identities under %s", identities, root)
    return root
