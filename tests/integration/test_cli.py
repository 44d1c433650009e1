"""The command line: demo end to end, help text, exit codes for usage and configuration errors."""

import json
from pathlib import Path

import pytest

from facesieve.cli.main import build_parser, main
from facesieve.evaluate.edits import EDITS

pytestmark = pytest.mark.integration


def test_demo_runs_every_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path / "demo"), "--runner", "local", "--json", "-q"]) == 0
    info = json.loads(capsys.readouterr().out)
    files = [p for p in (tmp_path / "demo" / "data").rglob("*") if p.is_file()]
    assert info["totals"]["images"] == len(files) >= 100
    assert info["totals"]["status"]["decode_error"] == 1
    assert info["totals"]["status"]["unsupported"] == 1
    assert info["shards"]["total"] >= 3  # small shards so Ray workers share the demo
    assert set(info["steps"]) == {"embed", "index-train", "index-fill", "knn", "knn-refresh",
                                  "cluster", "clean"}  # fmt: skip
    out = tmp_path / "demo" / "out"
    assert json.loads((out / "run.json").read_text()) == info
    assert info["cluster"]["clusters"] >= 15
    reasons = info["report"]["reasons"]
    for reason in ("decode_error", "no_face", "exact_duplicate", "near_duplicate", "mislabeled"):
        assert reasons.get(reason, 0) >= 1, reason
    report = out / "report"
    assert (report / "index.html").is_file() and (report / "data" / "index.js").is_file()
    assert (report / "thumbs" / "sheet-1.jpg").stat().st_size > 10_000  # real thumbnails
    # the text output says where the report is
    assert main(["clean", str(out)]) == 0
    assert f"{out}/report/index.html" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command",
    ["embed", "verify", "demo", "index", "search", "cluster", "clean", "run", "eval", "config"],
)
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--device" in text and "--config" in text


def test_configuration_errors_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("faces:\n  det_treshold: 0.3\n")
    (tmp_path / "in").mkdir()
    assert (
        main(["embed", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--config", str(bad)])
        == 2
    )
    assert main(["embed", str(tmp_path / "in"), "--out", str(tmp_path / "in" / "out")]) == 2
    missing = str(tmp_path / "none.onnx")
    assert (
        main(["embed", str(tmp_path / "in"), "--out", str(tmp_path / "o"), "--detector", missing])
        == 2
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "x", "--out", "y", "--device", "tpu"])
    assert exit_info.value.code == 2
    assert main(["eval", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e"), "-q"]) == 2
    assert main(["clean", str(tmp_path / "in"), "-q"]) == 2  # nothing embedded there


def test_eval_scores_injected_problems(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesieve eval` on the demo identities, every identity at once: every injected kind is
    found and scored, per edit too."""
    args = ["eval", str(demo_data), "--out", str(tmp_path / "ev"), "--runner", "local"]
    args += ["--split", "none", "--mislabel-rate", "0.1", "--near-dup-rate", "0.1"]
    args += ["--corrupt-rate", "0.03", "--no-face-rate", "0.03", "--refile-rate", "0.03"]
    assert main([*args, "--json", "-q"]) == 0
    report = json.loads(capsys.readouterr().out)["labeled"]["all"]
    injected, scores = report["injected"], report["scores"]
    assert injected["moved"] >= 8 and injected["near_copy"] >= 8 and injected["corrupt"] >= 2
    assert injected["refiled"] >= 2
    assert scores["decode_error"]["recall"] == 1.0 and scores["no_face"]["recall"] == 1.0
    assert scores["exact_duplicate"]["recall"] == 1.0
    assert scores["near_duplicate"]["recall"] >= 0.75
    edits = list(EDITS)[: min(injected["near_copy"], len(EDITS))]
    assert set(edits) <= set(scores["near_duplicate"]["by_edit"])  # one of each edit, in turn
    # the demo's players come from one low-resolution photo, so strangers reach cosine 0.25-0.3
    # and a few moved crops keep more than mislabel_max_own with their new label
    assert scores["mislabeled"]["recall"] >= 0.75 and scores["mislabeled"]["precision"] >= 0.8
    assert scores["refiled"]["duplicate_found"] == scores["refiled"]["copies"]
    assert scores["refiled"]["both_halves"] >= 1
    assert report["clustering"]["bcubed"]["f"] >= 0.9
    assert (tmp_path / "ev" / "labeled" / "all" / "truth.json").is_file()
    assert (tmp_path / "ev" / "eval.json").is_file()


def test_eval_chooses_thresholds_on_calibration_identities(
    demo_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default split: two disjoint halves of the identities, thresholds chosen on one and
    scored on the other; a photo collection (here the demo's files, any layout) gets its own
    rows."""
    args = ["eval", str(demo_data), "--photos", str(demo_data), "--out", str(tmp_path / "ev")]
    args += ["--runner", "local", "--photo-copy-rate", "0.3", "--json", "-q"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    labeled = report["labeled"]
    assert {"calibration", "test", "test_calibrated", "thresholds"} <= set(labeled)
    cal = json.loads((tmp_path / "ev" / "labeled" / "calibration" / "truth.json").read_text())
    test = json.loads((tmp_path / "ev" / "labeled" / "test" / "truth.json").read_text())
    labels = lambda t: {f["true_label"] for f in t["files"].values()}  # noqa: E731
    assert labels(cal) and labels(test) and not labels(cal) & labels(test)
    sweep = labeled["thresholds"]["chosen_on_calibration"]
    assert set(sweep) == {"near_dup_min_pixel", "mislabel_min_cosine", "outlier_max_own"}
    assert all(len(v["tried"]) >= 5 for v in sweep.values())
    assert labeled["test_calibrated"]["images"] == labeled["test"]["images"]
    photos = report["photos"]
    assert photos["test"]["scores"]["near_duplicate"]["copies"] >= 5
    assert photos["test"]["scores"]["near_duplicate"]["recall"] >= 0.8
    assert "thresholds" in photos and "mislabeled" not in photos["test"]["scores"]
