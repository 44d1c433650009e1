"""``--face`` on verify and search: parsing, and which faces each choice selects."""

import numpy as np
import pytest

from facesieve.cli.parser import build_parser
from facesieve.errors import ConfigError
from facesieve.faces.engine import Face
from facesieve.faces.verify import Photo, choose_faces


def _face(box: list[float], det: float) -> Face:
    b = np.array(box, np.float32)
    side = float(max(b[2] - b[0], b[3] - b[1]))
    return Face(b, np.zeros((5, 2), np.float32), det, side, 100.0, 0.0, np.zeros(512, np.float32))


# detection order (best score first): a cut-off edge face, the centred subject, a tiny face
PHOTO = Photo(
    "p.jpg",
    250,
    250,
    [
        _face([-60, 40, 78, 178], 0.85),
        _face([57, 50, 194, 187], 0.80),
        _face([200, 10, 220, 30], 0.60),
    ],
)


@pytest.mark.parametrize("command", [["verify", "a.jpg", "b.jpg"], ["search", "out", "q.jpg"]])
def test_face_defaults_to_the_subject_rule_and_parses_every_choice(command: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(command).face == "subject"
    for value, parsed in [("largest", "largest"), ("central", "central"), ("all", "all")]:
        assert parser.parse_args([*command, "--face", value]).face == parsed
    assert parser.parse_args([*command, "--face", "2"]).face == 2


@pytest.mark.parametrize("bad", ["biggest", "-1", "1.5", ""])
def test_a_bad_face_value_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["verify", "a.jpg", "b.jpg", "--face", bad])
    assert exit_info.value.code == 2
    assert "--face" in capsys.readouterr().err


def test_each_choice_selects_its_faces() -> None:
    assert choose_faces(PHOTO, "subject") == [1]
    assert choose_faces(PHOTO, "largest") == [0]
    assert choose_faces(PHOTO, "central") == [1]
    assert choose_faces(PHOTO, "all") == [0, 1, 2]
    assert choose_faces(PHOTO, 2) == [2]


def test_a_face_number_past_the_last_face_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--face 3 is out of range: the image has 3 faces"):
        choose_faces(PHOTO, 3)
