"""Reduced JPEG decoding: which scale is chosen, and that coordinates come back in original
pixels (the images table keeps the file's own size, the faces table original coordinates)."""

import io

import numpy as np
import pytest
from PIL import Image

from facesieve import schema
from facesieve.faces import scrfd
from facesieve.faces.align import align_face
from facesieve.faces.decode import decode_image, draft_factor
from facesieve.faces.engine import Prepared, align_detections
from tests.conftest import jpeg_bytes

LIMITS = {"max_pixels": 40_000_000, "max_bytes": 1 << 26}


@pytest.mark.parametrize(
    ("width", "height", "min_side", "factor"),
    [
        (4000, 3000, 1280, 2),  # 2000 >= 1280; 1/4 would give 1000
        (4000, 3000, 640, 4),  # 1000 >= 640; 1/8 would give 500
        (3000, 4000, 640, 4),  # portrait: the longer side counts
        (6000, 1000, 640, 8),  # 750 >= 640
        (2559, 1000, 1280, 2),  # ceil(2559 / 2) = 1280, as libjpeg rounds
        (2558, 1000, 1280, 1),  # 1279 would be too small
        (600, 400, 1280, 1),  # smaller than needed: never reduced
        (4000, 3000, 0, 1),  # 0 turns reduction off
    ],
)
def test_draft_factor_keeps_the_longer_side_large_enough(
    width: int, height: int, min_side: int, factor: int
) -> None:
    k = draft_factor(width, height, min_side)
    assert k == factor
    assert -(-max(width, height) // k) >= min(min_side, max(width, height))


def _gradient(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[:height, :width]
    return np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def test_large_jpeg_decodes_reduced_with_original_size() -> None:
    data = jpeg_bytes(_gradient(1100, 2600))
    full = decode_image(data, **LIMITS)
    reduced = decode_image(data, **LIMITS, min_side=1280)
    assert full.scale == 1.0 and full.pixels is not None and full.pixels.shape == (1100, 2600, 3)
    assert reduced.status == schema.OK and reduced.pixels is not None
    assert reduced.scale == 2.0 and reduced.pixels.shape == (550, 1300, 3)
    assert (reduced.width, reduced.height) == (2600, 1100)  # the file's own size
    # the same picture: the reduced decode matches the full one shrunk by 2 (DCT scaling)
    shrunk = full.pixels.reshape(550, 2, 1300, 2, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - reduced.pixels.astype(np.float64)).mean() < 6.0


def test_png_and_small_jpeg_are_never_reduced() -> None:
    buf = io.BytesIO()
    Image.fromarray(_gradient(1000, 2800)).save(buf, format="PNG")
    png = decode_image(buf.getvalue(), **LIMITS, min_side=640)
    small = decode_image(jpeg_bytes(_gradient(500, 600)), **LIMITS, min_side=640)
    assert png.scale == 1.0 and png.pixels is not None and png.pixels.shape == (1000, 2800, 3)
    assert small.scale == 1.0 and small.pixels is not None and small.pixels.shape == (500, 600, 3)


def test_exif_rotated_jpeg_keeps_upright_original_size() -> None:
    img = Image.fromarray(_gradient(1000, 2700))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    full = decode_image(buf.getvalue(), **LIMITS)
    reduced = decode_image(buf.getvalue(), **LIMITS, min_side=1280)
    assert full.pixels is not None and full.pixels.shape == (2700, 1000, 3)
    assert (full.width, full.height) == (1000, 2700)
    assert reduced.pixels is not None and reduced.pixels.shape == (1350, 500, 3)
    assert (reduced.width, reduced.height) == (1000, 2700) and reduced.scale == 2.0


def test_alignment_crops_reduced_pixels_and_reports_original_coordinates() -> None:
    pixels = _gradient(300, 400)
    lm = np.array([[150, 120], [210, 118], [180, 150], [155, 180], [205, 178]], np.float32)
    det = scrfd.Detections(
        np.array([[120, 80, 240, 220]], np.float32),
        np.array([0.9], np.float32),
        lm[None],
    )
    item = Prepared(pixels, 4.0, 320, None, 1.0)
    out = align_detections(item, det)
    np.testing.assert_array_equal(out.crops[0], align_face(pixels, lm))  # reduced pixels
    np.testing.assert_array_equal(out.boxes[0], [480, 320, 960, 880])  # original pixels
    np.testing.assert_array_equal(out.landmarks[0], lm * 4)
    assert out.scores == [pytest.approx(0.9)]
    same = align_detections(Prepared(pixels, 1.0, 320, None, 1.0), det)
    np.testing.assert_array_equal(same.boxes, det.boxes)  # not reduced: unchanged


def test_per_image_detector_input_is_the_batch_input_bit_for_bit() -> None:
    canvases = [scrfd.letterbox(_gradient(250, 230), 256)[0], np.full((256, 256, 3), 7, np.uint8)]
    batch = scrfd.to_input(canvases)
    assert np.array_equal(np.stack([scrfd.to_input_one(c) for c in canvases]), batch)
