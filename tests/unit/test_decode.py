import io

import numpy as np
import pytest
from PIL import Image

from facesieve import schema
from facesieve.faces.decode import decode_image
from tests.conftest import jpeg_bytes, png_bomb

LIMITS = {"max_pixels": 4_000_000, "max_bytes": 1_000_000}


def test_valid_jpeg_decodes_to_rgb() -> None:
    px = np.zeros((40, 60, 3), np.uint8)
    px[..., 0] = 200
    d = decode_image(jpeg_bytes(px), **LIMITS)
    assert d.status == schema.OK and d.pixels is not None
    assert d.pixels.shape == (40, 60, 3) and (d.width, d.height) == (60, 40)
    assert d.pixels[..., 0].mean() > 180 and d.pixels[..., 2].mean() < 30  # RGB order, not BGR


def test_grayscale_png_becomes_three_channels() -> None:
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 12), 99, np.uint8)).save(buf, format="PNG")
    d = decode_image(buf.getvalue(), **LIMITS)
    assert d.status == schema.OK and d.pixels is not None and d.pixels.shape == (10, 12, 3)


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        (b"", schema.DECODE_ERROR, "empty"),
        (b"this is not an image at all", schema.DECODE_ERROR, "not a recognised"),
        (jpeg_bytes(np.zeros((300, 300, 3), np.uint8))[:400], schema.DECODE_ERROR, "cannot decode"),
        (png_bomb(50_000, 50_000), schema.TOO_LARGE, "pixels"),
        (b"\xff" * 1_000_001, schema.TOO_LARGE, "bytes"),
    ],
    ids=["empty", "garbage", "truncated", "bomb", "too-many-bytes"],
)
def test_bad_files_get_a_status_and_a_reason(data: bytes, status: str, words: str) -> None:
    d = decode_image(data, **LIMITS)
    assert d.status == status
    assert d.error is not None and words in d.error
    assert d.pixels is None
