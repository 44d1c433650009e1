"""Bytes -> RGB pixels, or a status and a reason; never an exception that stops a shard.

The pixel limit is checked from the header before any pixel is decoded, so a 20-byte PNG that
claims 100,000 x 100,000 pixels (a decompression bomb) costs nothing. Truncated files are errors,
not half-grey images: Pillow refuses to load them unless told otherwise, and we never tell it.

A JPEG much larger than the models need can be decoded at 1/2, 1/4 or 1/8 of its size
(``min_side``): libjpeg scales in the DCT domain, so it decodes that much less instead of decoding
everything and shrinking it afterwards (a 4000x3000 phone photo at 1/4 decodes several times
faster). ``width``/``height`` stay the file's own size and ``scale`` says how many original pixels
one decoded pixel spans, so detections can be mapped back to original pixel coordinates.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facesieve import schema

Image.MAX_IMAGE_PIXELS = None  # we apply our own, configurable limit before decoding

DRAFT_FACTORS = (8, 4, 2)  # the reductions libjpeg's DCT scaling offers
_SWAPS_AXES = {5, 6, 7, 8}  # EXIF orientations that turn the picture by 90 degrees
_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Decoded:
    """Outcome of decoding one file: pixels when ``status == ok``, else a reason."""

    status: str
    error: str | None = None
    pixels: np.ndarray | None = None  # HxWx3 uint8 RGB, possibly reduced (see ``scale``)
    width: int | None = None  # the upright image's own size, whatever was decoded
    height: int | None = None
    scale: float = 1.0  # original pixels per decoded pixel (1, 2, 4 or 8)


def draft_factor(width: int, height: int, min_side: int) -> int:
    """The largest DCT reduction (8, 4, 2, else 1) that keeps the longer side >= ``min_side``.

    ``min_side <= 0`` turns reduction off. The decoded side is ``ceil(side / k)``, as libjpeg
    rounds it.
    """
    if min_side <= 0:
        return 1
    longest = max(width, height)
    for k in DRAFT_FACTORS:
        if -(-longest // k) >= min_side:
            return k
    return 1


def decode_image(
    data: bytes, max_pixels: int, max_bytes: int, min_side: int = 0, factor: int = 0
) -> Decoded:
    """Decode ``data``; the status is one of ``ok``, ``decode_error`` or ``too_large``.

    With ``min_side > 0`` a JPEG whose longer side is at least twice ``min_side`` is decoded at
    the largest reduction that keeps its longer side >= ``min_side`` (``Decoded.scale``);
    ``factor`` (1, 2, 4 or 8) asks for one reduction instead.
    """
    if len(data) == 0:
        return Decoded(schema.DECODE_ERROR, "empty file (0 bytes)")
    if len(data) > max_bytes:
        return Decoded(schema.TOO_LARGE, f"file has {len(data)} bytes, limit is {max_bytes}")
    scale = 1.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                return Decoded(
                    schema.TOO_LARGE,
                    f"{width}x{height} = {width * height} pixels, limit is {max_pixels}",
                    width=width,
                    height=height,
                )
            k = factor or draft_factor(width, height, min_side)
            k = k if img.format == "JPEG" else 1
            if k > 1:
                drafted = img.draft("RGB", (width // k, height // k))
                if drafted is not None:
                    scale = width / drafted[1][2]
            img.load()
            orientation = img.getexif().get(_ORIENTATION, 1)
            if orientation in _SWAPS_AXES:
                width, height = height, width
            if orientation != 1:
                img = ImageOps.exif_transpose(img)
            if img.mode != "RGB":
                img = img.convert("RGB")
            rgb = np.asarray(img)
    except UnidentifiedImageError:
        return Decoded(schema.DECODE_ERROR, "not a recognised image format")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return Decoded(schema.DECODE_ERROR, f"cannot decode: {exc}")
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        return Decoded(schema.DECODE_ERROR, f"unexpected pixel array shape {rgb.shape}")
    return Decoded(schema.OK, None, np.ascontiguousarray(rgb), width, height, scale)
