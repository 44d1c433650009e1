import numpy as np
import pytest

from facesieve.faces import scrfd


def test_input_side_pads_small_images_and_caps_large_ones() -> None:
    assert scrfd.input_side(250, 250, 640, 128) == 256
    assert scrfd.input_side(100, 60, 640, 128) == 128
    assert scrfd.input_side(3000, 4000, 640, 128) == 640
    assert scrfd.input_side(480, 641, 640, 128) == 640


def test_letterbox_never_enlarges_and_reports_scale() -> None:
    img = np.full((250, 200, 3), 7, np.uint8)
    canvas, scale = scrfd.letterbox(img, 256)
    assert scale == 1.0 and canvas.shape == (256, 256, 3)
    assert (
        (canvas[:250, :200] == 7).all()
        and (canvas[250:] == 0).all()
        and (canvas[:, 200:] == 0).all()
    )
    big = np.zeros((1280, 640, 3), np.uint8)
    canvas, scale = scrfd.letterbox(big, 640)
    assert scale == 0.5 and canvas.shape == (640, 640, 3)


def test_anchor_centers_two_per_cell_row_major() -> None:
    c = scrfd.anchor_centers(64, 16)
    assert c.shape == (4 * 4 * 2, 2)
    np.testing.assert_array_equal(c[0], c[1])
    np.testing.assert_array_equal(c[2], [16, 0])  # second cell of the first row
    np.testing.assert_array_equal(c[8], [0, 16])  # first cell of the second row


def test_nms_keeps_best_of_overlapping_and_disjoint_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert scrfd.nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert scrfd.nms(boxes, scores, 0.99).tolist() == [1, 0, 2]


def _outputs(
    side: int, hits: dict[tuple[int, int], tuple[float, list[float], list[float]]]
) -> list[np.ndarray]:
    """Fake SCRFD outputs for one image: ``hits[(level, anchor)] = (score, dist4, kps10)``."""
    scores, boxes, kps = [], [], []
    for level, stride in enumerate(scrfd.STRIDES):
        n = (side // stride) ** 2 * 2
        s, b, k = (
            np.zeros((1, n, 1), np.float32),
            np.zeros((1, n, 4), np.float32),
            np.zeros((1, n, 10), np.float32),
        )
        for (lv, anchor), (score, dist, kp) in hits.items():
            if lv == level:
                s[0, anchor, 0], b[0, anchor], k[0, anchor] = score, dist, kp
        scores.append(s)
        boxes.append(b)
        kps.append(k)
    return scores + boxes + kps


def test_decode_turns_stride_units_into_pixels_and_undoes_scale() -> None:
    side = 64
    # level 1 (stride 16): anchor 10 is cell 5 -> (x=16, y=16)
    kp = [0.5, -0.5, 1, 1, 0, 0, -1, 1, 2, 2]
    out = _outputs(side, {(1, 10): (0.9, [1, 1, 2, 3], kp), (0, 0): (0.3, [1, 1, 1, 1], [0] * 10)})
    det = scrfd.decode(out, 0, side, scale=0.5, score_threshold=0.5, nms_threshold=0.4)
    assert len(det) == 1
    np.testing.assert_allclose(det.boxes[0], np.array([0, 0, 48, 64]) / 0.5)
    np.testing.assert_allclose(det.landmarks[0, 0], np.array([16 + 8, 16 - 8]) / 0.5)
    np.testing.assert_allclose(det.scores, [0.9])


@pytest.mark.parametrize("threshold", [0.95, 1.0])
def test_decode_returns_empty_when_nothing_passes(threshold: float) -> None:
    out = _outputs(64, {(0, 3): (0.9, [1, 1, 1, 1], [0] * 10)})
    assert len(scrfd.decode(out, 0, 64, 1.0, threshold, 0.4)) == 0
