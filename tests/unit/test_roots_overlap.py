import os
from pathlib import Path

import pytest

from facesieve.storage import roots_overlap


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("s3://b/data", "s3://b/data/out", True),
        ("s3://b/data/", "s3://b/data", True),
        ("s3://b/data", "s3://b/database", False),  # a shared prefix is not a parent
        ("s3://b/data", "s3://c/data", False),
        ("/srv/a", "/srv/b", False),
    ],
)
def test_roots_overlap(a: str, b: str, overlap: bool) -> None:
    assert roots_overlap(a, b) is overlap and roots_overlap(b, a) is overlap


def test_relative_paths_are_compared_as_what_they_are(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert roots_overlap("./data", str(tmp_path / "data" / "out"))
        assert roots_overlap("data/../data", "data/x")
        assert not roots_overlap("data", "data2")
    finally:
        os.chdir(cwd)
