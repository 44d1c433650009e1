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
