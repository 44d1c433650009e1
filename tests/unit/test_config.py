from pathlib import Path

import pytest

from facesieve.config import Config, load_config
from facesieve.errors import ConfigError

DIGESTS = {"detector": "a" * 64, "recognizer": "b" * 64}


def test_yaml_sections_become_dataclasses(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("source:\n  shard_size: 50\nfaces:\n  det_threshold: 0.6\nrun:\n  runner: local\n")
    cfg = load_config(f)
    assert (
        cfg.source.shard_size == 50 and cfg.faces.det_threshold == 0.6 and cfg.run.runner == "local"
    )


@pytest.mark.parametrize(
    "text",
    [
        "faces:\n  det_treshold: 0.6\n",
        "nonsense: {}\n",
        "faces: 3\n",
        "faces:\n  aligned: maybe\n",
        "- a\n",
    ],
)
def test_bad_yaml_is_a_config_error_naming_the_problem(tmp_path: Path, text: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError):
        load_config(f)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_fingerprint_tracks_outputs_not_execution() -> None:
    base = Config()
    fp = base.fingerprint(DIGESTS)
    assert base.with_overrides("run", device="cuda", workers=8).fingerprint(DIGESTS) == fp
    assert base.with_overrides("faces", embed_batch=7).fingerprint(DIGESTS) == fp
    assert base.with_overrides("faces", det_threshold=0.6).fingerprint(DIGESTS) != fp
    assert base.with_overrides("faces", flip=True).fingerprint(DIGESTS) != fp
    assert base.fingerprint({**DIGESTS, "recognizer": "c" * 64}) != fp


def test_overrides_reject_unknown_keys_and_validate() -> None:
    with pytest.raises(ConfigError):
        Config().with_overrides("faces", nope=1)
    with pytest.raises(ConfigError):
        Config().with_overrides("faces", det_size=100).validate()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'source:\n  shard_size: "fifty"\n',
            "source.shard_size: expected an integer, got 'fifty' (str)",
        ),
        (
            "source:\n  shard_size: 10.5\n",
            "source.shard_size: expected an integer, got 10.5 (float)",
        ),
        ("faces:\n  flip: 1\n", "faces.flip: expected true or false, got 1 (int)"),
        ('faces:\n  flip: "yes"\n', "faces.flip: expected true or false, got 'yes' (str)"),
        ("faces:\n  det_threshold: high\n", "faces.det_threshold: expected a number, got 'high'"),
        ("clean:\n  min_face_px: true\n", "clean.min_face_px: expected a number, got True (bool)"),
        ("faces:\n  detector: 5\n", "faces.detector: expected a string or null, got 5 (int)"),
        ("run:\n  runner: null\n", "run.runner: expected a string, got None (NoneType)"),
    ],
)
def test_wrong_types_name_key_type_and_value(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert message in str(info.value) and str(f) in str(info.value)


def test_ints_pass_for_floats_and_null_for_optional(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("clean:\n  min_face_px: 40\nfaces:\n  detector: null\nrun:\n  lease_s: 60\n")
    cfg = load_config(f)
    assert cfg.clean.min_face_px == 40.0 and isinstance(cfg.clean.min_face_px, float)
    assert cfg.faces.detector is None and isinstance(cfg.run.lease_s, float)


def test_set_overrides_the_file_with_typed_values(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("clean:\n  min_face_px: 40\n  report_rows: 5\n")
    sets = [
        "clean.min_face_px=50",
        "faces.flip=true",
        "index.memory=512M",
        "faces.detector=123.onnx",
        "run.ray_address=null",
        "faces.recognizer=77",  # a string field keeps the text as written
    ]
    cfg = load_config(f, sets)
    assert cfg.clean.min_face_px == 50.0 and cfg.clean.report_rows == 5
    assert cfg.faces.flip is True and cfg.index.memory == "512M"
    assert cfg.faces.detector == "123.onnx" and cfg.faces.recognizer == "77"
    assert cfg.run.ray_address is None


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("clean.min_face_px", "expected SECTION.KEY=VALUE"),
        ("min_face_px=3", "expected SECTION.KEY=VALUE"),
        ("nope.x=1", "unknown section 'nope'"),
        ("clean.min_fase_px=3", "unknown key(s) in clean: min_fase_px"),
        ("source.shard_size=fifty", "source.shard_size: expected an integer, got 'fifty' (str)"),
        ("faces.flip=maybe", "faces.flip: expected true or false, got 'maybe'"),
        ("clean.near_dup_min_cosine=3", "must lie in [-1, 1]"),  # ranges still checked
    ],
)
def test_bad_set_is_a_config_error(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [item])
    assert message in str(info.value)


def test_overrides_are_type_checked() -> None:
    with pytest.raises(ConfigError, match=r"run\.workers: expected an integer"):
        Config().with_overrides("run", workers="4")


def test_public_dict_hides_url_userinfo() -> None:
    cfg = Config().with_overrides(
        "run", s3_endpoint="http://bob:hunter2@127.0.0.1:8333", ray_address="ray://u:tok@h:10001"
    )
    data = cfg.public_dict()
    assert data["run"]["s3_endpoint"] == "http://REDACTED@127.0.0.1:8333"
    assert data["run"]["ray_address"] == "ray://REDACTED@h:10001"
    assert cfg.to_dict()["run"]["s3_endpoint"].startswith("http://bob:")  # code still has it


def test_unquoted_yes_for_a_string_key_says_to_quote_it(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("faces:\n  aligned: yes\n")
    with pytest.raises(
        ConfigError, match=r"faces\.aligned: expected a string, got True .*quote it"
    ):
        load_config(f)
    f.write_text("faces:\n  aligned: 'yes'\n")
    assert load_config(f).faces.aligned == "yes"
    assert load_config(None, ["faces.aligned=yes"]).faces.aligned == "yes"  # --set keeps text
