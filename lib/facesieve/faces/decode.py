"""Bytes -> RGB pixels, or a status and a reason; never an exception that stops a shard.

The pixel limit is checked from the header before any pixel is decoded, so a 20-byte PNG that
claims 100,000 x 100,000 pixels (a decompression bomb) costs nothing. Truncated files are errors,
not half-grey images: Pillow refuses to load them unless told otherwise, and we never tell it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facesieve import schema

Image.MAX_IMAGE_PIXELS = None  # we apply our own, configurable limit before decoding


@dataclass(frozen=True)
class Decoded:
    """Outcome of decoding one file: pixels when ``status == ok``, else a reason."""

    status: str
    error: str | None = None
    pixels: np.ndarray | None = None  # HxWx3 uint8 RGB
    width: int | None = None
    height: int | None = None


def decode_image(data: bytes, max_pixels: int, max_bytes: int) -> Decoded:
    """Decode ``data``; the status is one of ``ok``, ``decode_error`` or ``too_large``."""
    if len(data) == 0:
        return Decoded(schema.DECODE_ERROR, "empty file (0 bytes)")
    if len(data) > max_bytes:
        return Decoded(schema.TOO_LARGE, f"file has {len(data)} bytes, limit is {max_bytes}")
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
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = np.asarray(img.convert("RGB"))
    except UnidentifiedImageError:
        return Decoded(schema.DECODE_ERROR, "not a recognised image format")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return Decoded(schema.DECODE_ERROR, f"cannot decode: {exc}")
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        return Decoded(schema.DECODE_ERROR, f"unexpected pixel array shape {rgb.shape}")
    return Decoded(schema.OK, None, np.ascontiguousarray(rgb), rgb.shape[1], rgb.shape[0])
