import numpy as np
import pyarrow as pa
import pytest

from facesieve.faces.subject import central_faces, completeness, pick_face, subject_scores


def test_the_face_nearest_the_centre_is_the_subject() -> None:
    images = pa.table(
        {"image_id": ["a", "b", "c"], "width": [200, 100, 50], "height": [200, 100, 50]}
    )
    faces = pa.table(
        {
            "image_id": ["a", "a", "a", "b"],
            "bbox": [[0, 0, 40, 40], [80, 80, 120, 120], [150, 150, 200, 200], [60, 0, 100, 40]],
        }
    )
    assert central_faces(images, faces) == {"a": 1, "b": 3}  # "c" has no face


# The verify/search rule on synthetic boxes in a 250x250 image (x1 y1 x2 y2).
W = H = 250.0


def test_a_cut_off_face_at_the_edge_loses_to_a_complete_central_one() -> None:
    boxes = np.array([[-60, 40, 78, 178], [57, 50, 194, 187]])  # 138 px half out; 137 px centred
    dets = np.array([0.80, 0.80])
    assert pick_face("largest", boxes, dets, W, H) == 0
    assert pick_face("subject", boxes, dets, W, H) == 1
    assert completeness(boxes, W, H)[0] == pytest.approx(78 / 138)
    assert completeness(boxes, W, H)[1] == 1.0


def test_a_tiny_central_face_loses_to_a_large_complete_one() -> None:
    boxes = np.array([[115, 115, 135, 135], [10, 20, 150, 160]])  # 20 px centred; 140 px inside
    dets = np.array([0.9, 0.9])
    assert pick_face("central", boxes, dets, W, H) == 0
    assert pick_face("subject", boxes, dets, W, H) == 1


def test_a_poor_detection_loses_to_a_good_one_of_similar_size_and_place() -> None:
    boxes = np.array([[60, 60, 180, 180], [70, 62, 190, 182]])
    assert pick_face("subject", boxes, np.array([0.52, 0.88]), W, H) == 1
    assert pick_face("subject", boxes, np.array([0.88, 0.52]), W, H) == 0


def test_scores_are_products_of_factors_in_zero_one_and_ties_go_to_the_first_face() -> None:
    boxes = np.array([[75, 75, 175, 175], [75, 75, 175, 175], [300, 300, 400, 400]])
    scores = subject_scores(boxes, np.array([np.nan, 1.0, 1.0]), W, H)  # NaN: aligned crop
    assert scores[0] == pytest.approx(1.0) and scores[1] == pytest.approx(1.0)
    assert scores[2] == 0.0  # entirely outside the frame
    assert pick_face("subject", boxes, np.array([np.nan, 1.0, 1.0]), W, H) == 0


def test_pick_face_refuses_no_faces_and_unknown_rules() -> None:
    with pytest.raises(ValueError, match="no faces"):
        pick_face("subject", np.zeros((0, 4)), np.zeros(0), W, H)
    with pytest.raises(ValueError, match="unknown subject rule"):
        pick_face("biggest", np.array([[0, 0, 10, 10]]), np.array([0.9]), W, H)  # type: ignore[arg-type]
