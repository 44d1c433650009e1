import cv2
import numpy as np

from facesieve.faces import quality
from facesieve.faces.align import ARCFACE_TEMPLATE, align_face, similarity_transform


def test_similarity_transform_recovers_a_known_transform() -> None:
    angle, scale, shift = np.deg2rad(20), 2.5, np.array([40.0, -7.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = (ARCFACE_TEMPLATE - shift) @ np.linalg.inv(rot).T  # dst = rot @ src + shift
    m = similarity_transform(src)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-4)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-3)


def test_similarity_transform_is_least_squares_under_noise() -> None:
    rng = np.random.default_rng(0)
    src = ARCFACE_TEMPLATE * 3 + 100 + rng.normal(0, 1.5, (5, 2))
    m = similarity_transform(src)
    mapped = src @ m[:, :2].T + m[:, 2]
    residual = np.linalg.norm(mapped - ARCFACE_TEMPLATE, axis=1).mean()
    assert residual < 1.5  # noise of 1.5 px at 3x scale is 0.5 px in template units, on average
    # any perturbation of the optimum fits worse
    worse = mapped + np.array([0.5, 0])
    assert np.linalg.norm(worse - ARCFACE_TEMPLATE, axis=1).mean() > residual


def test_align_face_moves_landmarks_onto_the_template() -> None:
    img = np.zeros((400, 400, 3), np.uint8)
    lm = ARCFACE_TEMPLATE * 2 + 90
    for x, y in lm:
        cv2.circle(img, (round(x), round(y)), 4, (255, 255, 255), -1)
    crop = align_face(img, lm)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:
        assert crop[round(y), round(x)].min() > 200


def test_yaw_is_zero_for_frontal_and_signed_for_turned_heads() -> None:
    assert abs(quality.yaw_degrees(ARCFACE_TEMPLATE)) < 3
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 15
    assert quality.yaw_degrees(turned) > 30
    turned[2, 0] -= 30
    assert quality.yaw_degrees(turned) < -30


def test_sharpness_drops_with_blur() -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    assert quality.sharpness(cv2.GaussianBlur(crop, (9, 9), 3)) < quality.sharpness(crop) / 10
    assert quality.face_size(np.array([10, 20, 60, 100])) == 80
