"""Real LFW pairs from ../shared (skipped when that folder is absent): the embed job plus the
verification threshold separate same-person from different-person pairs."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from facesieve.faces.subject import central_faces
from facesieve.faces.verify import DEFAULT_THRESHOLD
from facesieve.runner.pipeline import run_embed
from tests.integration.helpers import local_config

pytestmark = pytest.mark.integration


def _pairs(meta: Path, n: int) -> list[tuple[str, str, bool]]:
    lines = meta.read_text().splitlines()[1:]
    same = [line.split("\t") for line in lines[:n]]
    diff = [line.split("\t") for line in lines[300 : 300 + n]]
    path = lambda name, k: f"{name}/{name}_{int(k):04d}.jpg"  # noqa: E731
    return [(path(p[0], p[1]), path(p[0], p[2]), True) for p in same] + [
        (path(p[0], p[1]), path(p[2], p[3]), False) for p in diff
    ]


def test_lfw_pairs_are_told_apart(shared_faces: Path, tmp_path: Path) -> None:
    pairs = _pairs(shared_faces / "meta" / "lfw_pairs.txt", 25)
    src = tmp_path / "lfw"
    for a, b, _ in pairs:
        for rel in (a, b):
            dest = src / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.write_bytes((shared_faces / "labeled" / "lfw" / rel).read_bytes())
    out = tmp_path / "out"
    result = run_embed(str(src), str(out), local_config(), show_progress=False)
    totals = result.steps["embed"].totals
    assert totals["status"] == {"ok": totals["images"]}
    images = pq.read_table(out / "images")
    faces = pq.read_table(out / "faces")
    uris = dict(zip(*(images.column(c).to_pylist() for c in ("image_id", "uri")), strict=True))
    embs = np.stack(faces.column("embedding").to_numpy(zero_copy_only=False))
    subject = {  # the face nearest the centre of the 250x250 image is the labeled person
        Path(uris[i]).relative_to(src).as_posix(): embs[row]
        for i, row in central_faces(images, faces).items()
    }
    correct = [
        (float(subject[a] @ subject[b]) >= DEFAULT_THRESHOLD) == same for a, b, same in pairs
    ]
    assert np.mean(correct) >= 0.96


def test_search_with_a_second_photo_finds_the_person(
    shared_faces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Index first photos of 25 people plus 50 distractors; search with each second photo."""
    import json

    from facesieve.cli.main import main

    pairs = _pairs(shared_faces / "meta" / "lfw_pairs.txt", 25)
    lfw = shared_faces / "labeled" / "lfw"
    src = tmp_path / "lfw"
    indexed = {a for a, _, same in pairs if same} | {
        p for a, b, same in pairs if not same for p in (a, b)
    }
    queries = [(b, a.split("/")[0]) for a, b, same in pairs if same and b not in indexed]
    for rel in indexed:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((lfw / rel).read_bytes())
    out = tmp_path / "out"
    assert run_embed(str(src), str(out), local_config(), show_progress=False).exit_code == 0
    assert main(["index", str(out), "--runner", "local", "-q"]) == 0
    capsys.readouterr()
    hits = 0
    for rel, person in queries:
        assert (
            main(["search", str(out), str(lfw / rel), "-k", "3", "--device", "cpu", "--json"]) == 0
        )
        faces = json.loads(capsys.readouterr().out)["faces"]
        assert len(faces) == 1  # the default --face subject searches the subject face only
        subject = min(faces, key=lambda f: abs((f["bbox"][0] + f["bbox"][2]) / 2 - 125))
        hits += subject["matches"][0]["label"] == person
    assert len(queries) >= 20 and hits >= len(queries) - 1


def test_verify_picks_tony_blairs_face_not_the_cut_off_bystander(
    shared_faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tony_Blair_0001 holds a 138 px half-face at the image edge beside the 137 px subject: the
    largest-face rule compared the bystander; the default subject rule compares Tony Blair."""
    import json

    from facesieve.cli.main import main

    lfw = shared_faces / "labeled" / "lfw" / "Tony_Blair"
    pair = [str(lfw / "Tony_Blair_0001.jpg"), str(lfw / "Tony_Blair_0002.jpg")]
    assert main(["verify", *pair, "--device", "cpu", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["same_person"] is True and out["face_rule"] == "subject"
    x1, _, x2, _ = out["face_a"]["bbox"]
    assert x1 > 0 and x2 < 250  # the complete face inside the frame
    assert main(["verify", *pair, "--device", "cpu", "--json", "--face", "largest"]) == 0
    assert json.loads(capsys.readouterr().out)["same_person"] is False
