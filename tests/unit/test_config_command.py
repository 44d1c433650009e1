"""``facesieve config``: the effective configuration as YAML that --config reads back, and the
documented key table that cannot drift from the dataclasses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from facesieve.cli.main import main
from facesieve.config import Config, load_config
from facesieve.config_text import config_yaml, reference_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"


def test_printed_config_loads_back_to_the_same_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("clean:\n  min_face_px: 40\nsource:\n  shard_size: 50\n")
    args = ["config", "--config", str(f), "--set", "clean.min_det_score=0.7", "--workers", "3"]
    assert main([*args, "--knn-k", "12", "--flip"]) == 0
    printed = capsys.readouterr().out
    (tmp_path / "printed.yaml").write_text(printed)
    again = load_config(tmp_path / "printed.yaml")
    assert again.clean.min_face_px == 40.0 and again.source.shard_size == 50
    assert again.clean.min_det_score == 0.7 and again.run.workers == 3
    assert again.index.knn_k == 12 and again.faces.flip is True
    expected = load_config(f, ["clean.min_det_score=0.7"])
    expected = expected.with_overrides("run", workers=3).with_overrides("index", knn_k=12)
    assert again == expected.with_overrides("faces", flip=True)
    # and printing the loaded file again gives the same text
    assert config_yaml(again) == printed


def test_defaults_ignore_the_file_and_json_prints_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("clean:\n  min_face_px: 40\n")
    assert main(["config", "--defaults", "--config", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == Config().public_dict()
    assert main(["config", "--defaults", "--config", str(f)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == Config().public_dict()


def test_config_redacts_endpoint_userinfo(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = "run.s3_endpoint=http://bob:hunter2pass@127.0.0.1:8333"
    assert main(["config", "--set", endpoint, "--json"]) == 0
    out = capsys.readouterr().out
    assert "hunter2pass" not in out and "bob" not in out
    assert json.loads(out)["run"]["s3_endpoint"] == "http://REDACTED@127.0.0.1:8333"


def test_wrong_type_exits_2_naming_key_type_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text('source:\n  shard_size: "fifty"\n')
    assert main(["config", "--config", str(f)]) == 2
    assert main(["clean", str(tmp_path), "--set", "clean.min_face_px=big", "-q"]) == 2
    err = capsys.readouterr().err + caplog.text
    assert "source.shard_size: expected an integer, got 'fifty' (str)" in err
    assert "clean.min_face_px: expected a number, got 'big' (str)" in err
    assert "Traceback" not in err


def test_operations_doc_holds_the_generated_key_table() -> None:
    """docs/OPERATIONS.md copies reference_table(); regenerate it with
    `python -c "from facesieve.config_text import reference_table as t; print(t())"`."""
    table = reference_table()
    assert table.count("\n") == 2 + sum(len(v) for v in Config().to_dict().values())
    assert table in DOCS.read_text(), "docs/OPERATIONS.md key table is out of date"


def test_every_command_with_a_config_takes_set(capsys: pytest.CaptureFixture[str]) -> None:
    from facesieve.cli.parser import build_parser

    parser = build_parser()
    for command in ("embed", "verify", "index", "search", "cluster", "clean", "run", "eval"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--set SECTION.KEY=VALUE" in text, command
        assert "sections source, faces, run, index, cluster, clean" in text, command


def test_cleaning_doc_lists_every_threshold_with_its_default() -> None:
    import re

    text = (DOCS.parent / "CLEANING.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([0-9.]+) \|", text, re.MULTILINE))
    for key, value in Config().to_dict()["clean"].items():
        assert key in rows, f"docs/CLEANING.md has no row for clean.{key}"
        assert float(rows[key]) == float(value), key


def test_help_defaults_are_the_code_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from facesieve.cli.parser import build_parser
    from facesieve.faces.verify import DEFAULT_THRESHOLD

    parser = build_parser()
    texts = {}
    for command in ("run", "verify", "cluster"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        texts[command] = " ".join(capsys.readouterr().out.split())
    d = Config()
    run = texts["run"]
    for flag, value in [
        ("--shard-size N", d.source.shard_size),
        ("--det-size PX", d.faces.det_size),
        ("--memory SIZE", d.index.memory),
        ("--knn-k K", d.index.knn_k),
        ("--retries N", d.run.retries),
        ("--min-cluster-size N", d.cluster.min_cluster_size),
        ("--min-samples N", d.cluster.min_samples),
    ]:
        after = run.rsplit(flag, 1)[1][:300]  # the help line, not the usage line
        assert f"default {value})" in after, flag
    assert f"default {DEFAULT_THRESHOLD}:" in texts["verify"]
    assert "--set SECTION.KEY=VALUE" in texts["cluster"]
