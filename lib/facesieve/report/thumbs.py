"""Face thumbnails: the face region of an image (or the whole picture), at most 96 px a side.

A JPEG is decoded at the smallest scale (1/2, 1/4, 1/8: libjpeg's DCT scaling, Pillow's
``draft``) that still gives the thumbnail its 96 pixels: a 10-megapixel photo's thumbnail then
takes 34-57 ms instead of 340 ms (docs/BENCHMARKS.md, "Review page"), which is what makes
thumbnails for 100k flagged images affordable.
The same limits as ``faces.decode`` apply: the pixel count is checked from the header first, and
a truncated file gives no thumbnail rather than a half-grey one.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def face_thumb(data: bytes | None, bbox: np.ndarray | None, max_pixels: int) -> Image.Image | None:
    """The thumbnail of one image, or None when the bytes cannot be decoded."""
    if not data:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels or width < 1 or height < 1:
                return None
            side = max(width, height) if bbox is None else _side(bbox)
            scale = min(1.0, THUMB / max(side, 1.0))
            if img.format == "JPEG" and scale < 0.5:
                img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            img.load()
            ratio = img.size[0] / width  # draft scales both sides alike
            rgb = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    box = None if bbox is None else np.asarray(bbox, np.float32) * ratio
    return crop_face(rgb, box).convert("RGB")


def _side(bbox: np.ndarray) -> float:
    return float(max(bbox[2] - bbox[0], bbox[3] - bbox[1])) * (1 + 2 * MARGIN)
