"""Face thumbnails as inline JPEG data URIs, so the report is one file that works offline."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from facesieve.faces.decode import decode_image

THUMB = 96
MARGIN = 0.35  # box grows by this share on each side, so hair and chin show


def crop_face(rgb: np.ndarray, bbox: np.ndarray | None) -> Image.Image:
    """The face region (or the whole image when there is no face), as a square thumbnail."""
    if bbox is None:  # no face: the whole picture, no padding
        img = Image.fromarray(rgb)
        img.thumbnail((THUMB, THUMB))
        return img
    x1, y1, x2, y2 = (float(v) for v in bbox)
    side = max(x2 - x1, y2 - y1) * (1 + 2 * MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    box = [round(cx - side / 2), round(cy - side / 2)]
    box += [box[0] + max(int(side), 1), box[1] + max(int(side), 1)]
    img = Image.fromarray(rgb).crop(tuple(box))  # outside the image is filled black
    img.thumbnail((THUMB, THUMB))
    return img


def data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnail(data: bytes | None, bbox: np.ndarray | None, max_pixels: int) -> str | None:
    """Data URI of the face thumbnail, or None when the bytes cannot be decoded."""
    if not data:
        return None
    decoded = decode_image(data, max_pixels, len(data))
    if decoded.pixels is None:
        return None
    return data_uri(crop_face(decoded.pixels, bbox))
