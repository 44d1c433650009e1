import pyarrow as pa

from facesieve.faces.subject import central_faces


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
