"""Shared fixtures: bundled photos, a generated labeled dataset, the shared real-photo folder."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesieve.faces.decode import decode_image
from facesieve.faces.model_pack import bundled_photo

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose header claims a huge canvas (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def photo_pixels(name: str) -> np.ndarray:
    pixels = decode_image(bundled_photo(name).read_bytes(), 10**8, 10**8).pixels
    if pixels is None:
        raise RuntimeError(f"bundled photo {name} does not decode")
    return pixels


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `facesieve demo` dataset: ~20 identities x 5 images plus 3 broken files."""
    from facesieve.cli.demo import build_demo_data

    return build_demo_data(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    if not SHARED_FACES.is_dir():
        pytest.skip("../shared/data/faces is not present")
    return SHARED_FACES
