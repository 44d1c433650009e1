"""Reading input images back by uri: files and tar members; failures counted in one warning."""

from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

import pytest

from facesieve.clean.fetch import fetch_bytes


def test_files_and_tar_members_read_back_failures_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a.jpg").write_bytes(b"photo a")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        info = tarfile.TarInfo("x/b.jpg")
        info.size = 7
        tar.addfile(info, io.BytesIO(b"photo b"))
    uris = [
        f"{tmp_path}/a.jpg",
        f"{tmp_path}/s.tar#x/b.jpg",
        *(f"{tmp_path}/gone{i}.jpg" for i in range(50)),
    ]
    with caplog.at_level(logging.WARNING, logger="facesieve.clean.fetch"):
        got = fetch_bytes(uris)
    assert got == {uris[0]: b"photo a", uris[1]: b"photo b"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # not one line per missing file
    assert "50 of 52" in warnings[0].getMessage()
