"""The Python API: the common jobs in a few calls, for notebooks, scripts and other pipelines.

```python
import facesieve

emb = facesieve.Embedder(device="cpu")             # loads the models once
found = emb.embed(["a.jpg", open("b.png", "rb").read(), rgb_array])
found.images                                       # one row per input: status, error, n_faces
found.faces                                        # one row per face: bbox, ..., embedding
facesieve.embeddings(found.faces)                  # (n_faces, 512) float32, unit norm

result = facesieve.run("./lfw", "./out")           # every stage, as `facesieve run`
outputs = facesieve.open_run("./out")              # or s3://bucket/runs/nightly
outputs.actions()                                  # Arrow tables of the output contract
```

Everything here is a thin layer over what the CLI uses (``FaceEngine``, ``run_command``, the
output readers), so the API and the CLI cannot disagree. Results are Arrow tables because that
is what the outputs are: ``.to_pandas()`` or ``polars.from_arrow`` when wanted, zero-copy where
the types allow. Bad input is a row, never an exception: a path that cannot be read, bytes that
are not an image and an array of the wrong shape each become an ``images`` row with a status and
a reason, exactly as files do in a run. Only a value that is not an image at all (an ``int``, a
list) raises ``TypeError``, because that is a bug in the caller, not bad data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from facesieve import schema
from facesieve.config import Config, FaceConfig
from facesieve.errors import ConfigError, FacesieveError
from facesieve.faces.decode import Decoded, decode_image
from facesieve.faces.engine import Face, FaceEngine
from facesieve.outputs import read_folder, read_parquet
from facesieve.runner.pipeline import RUN_KEY, STAGES, RunResult, run_command
from facesieve.storage import open_store

ImageLike = str | os.PathLike | bytes | np.ndarray
BATCH = 32  # images decoded and analysed at a time: bounds memory for long lists

EMBED_IMAGES = pa.schema(
    [
        pa.field("index", pa.int32(), nullable=False),  # position in the list given
        pa.field("name", pa.string(), nullable=False),  # the path, or "<bytes N>", "<array N>"
        pa.field("status", pa.string(), nullable=False),  # schema.STATUSES
        pa.field("error", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("n_faces", pa.int32(), nullable=False),
    ]
)
EMBED_FACES = pa.schema(
    [
        pa.field("index", pa.int32(), nullable=False),  # the image's position in the list
        pa.field("face_index", pa.int32(), nullable=False),  # detection order, as in OUT/faces
        pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
        pa.field("landmarks", pa.list_(pa.float32(), 10), nullable=False),
        pa.field("det_score", pa.float32()),  # null for pre-aligned crops
        pa.field("face_px", pa.float32(), nullable=False),
        pa.field("sharpness", pa.float32(), nullable=False),
        pa.field("yaw", pa.float32(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), schema.EMBEDDING_DIM), nullable=False),
    ]
)


@dataclass(frozen=True)
class Embedded:
    """What ``Embedder.embed`` found: ``images`` (one row per input, in order) and ``faces``
    (one row per usable face, ``index`` pointing at its image)."""

    images: pa.Table
    faces: pa.Table


class Embedder:
    """Detect, align and embed faces of images held in memory or on local disk.

    The models load once, in the constructor; reuse one ``Embedder`` for many calls. ``config``
    is a ``Config`` (its ``faces`` and ``source.max_pixels`` apply), a ``FaceConfig``, or None
    for the defaults (the bundled models).
    """

    def __init__(
        self, config: Config | FaceConfig | None = None, device: str = "auto", threads: int = 0
    ) -> None:
        cfg = config if isinstance(config, Config) else Config(faces=config or FaceConfig())
        cfg.validate()
        self.max_pixels = cfg.source.max_pixels
        self.max_bytes = cfg.source.max_image_bytes
        self.engine = FaceEngine(cfg.faces, device, threads)

    @property
    def device(self) -> str:
        return self.engine.device

    def embed(self, images: Sequence[ImageLike]) -> Embedded:
        """Every face of every image. Paths are local files; bytes are encoded image files
        (JPEG, PNG, ...); arrays are RGB ``(H, W, 3)`` or grey ``(H, W)`` uint8 pixels."""
        image_rows: list[dict[str, Any]] = []
        face_rows: list[tuple[int, int, Face]] = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            decoded = [self._decode(start + i, item) for i, item in enumerate(chunk)]
            readable = [(i, d) for i, (_, d) in enumerate(decoded) if d.status == schema.OK]
            found = self.engine.analyze([d.pixels for _, d in readable]) if readable else []
            faces_of = {i: f for (i, _), f in zip(readable, found, strict=True)}
            for i, (name, dec) in enumerate(decoded):
                faces = faces_of.get(i, [])
                status = schema.NO_FACE if dec.status == schema.OK and not faces else dec.status
                image_rows.append(
                    {
                        "index": start + i,
                        "name": name,
                        "status": status,
                        "error": dec.error,
                        "width": dec.width,
                        "height": dec.height,
                        "n_faces": len(faces),
                    }
                )
                face_rows += [(start + i, k, face) for k, face in enumerate(faces)]
        return Embedded(pa.Table.from_pylist(image_rows, EMBED_IMAGES), _faces_table(face_rows))

    def _decode(self, position: int, item: ImageLike) -> tuple[str, Decoded]:
        if isinstance(item, np.ndarray):
            return f"<array {position}>", _from_array(item, self.max_pixels)
        if isinstance(item, bytes | bytearray | memoryview):
            return f"<bytes {position}>", decode_image(bytes(item), self.max_pixels, self.max_bytes)
        if isinstance(item, str | os.PathLike):
            name = os.fspath(item)
            try:
                data = Path(name).read_bytes()
            except OSError as exc:
                return name, Decoded(schema.DECODE_ERROR, f"cannot read: {exc.strerror or exc}")
            return name, decode_image(data, self.max_pixels, self.max_bytes)
        raise TypeError(
            f"image {position}: expected a path, bytes or a numpy array, not {type(item).__name__}"
        )


def embed(
    images: Sequence[ImageLike], config: Config | FaceConfig | None = None, device: str = "auto"
) -> Embedded:
    """``Embedder(config, device).embed(images)``, for one-off calls (loads the models)."""
    return Embedder(config, device).embed(images)


def embeddings(faces: pa.Table) -> np.ndarray:
    """The ``embedding`` column of a faces table as an ``(n, 512)`` float32 array."""
    column = faces.column("embedding").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, schema.EMBEDDING_DIM).astype(np.float32, copy=False)


def run(
    input_uri: str | None,
    out_uri: str,
    config: Config | None = None,
    stages: Sequence[str] = STAGES,
    show_progress: bool | None = False,
    accept_removals: bool = False,
) -> RunResult:
    """Run ``stages`` of the pipeline on ``input_uri`` into ``out_uri``, as ``facesieve run``
    does: only new or changed work is redone; ``input_uri`` may be None without ``embed``.
    ``result.exit_code`` is 1 when some units failed after retries; ``result.to_dict()`` is what
    ``run.json`` holds. Raises ``ConfigError`` on a bad configuration and ``LockError`` when
    another run holds ``out_uri``."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not stages:
        raise ConfigError(f"stages must be a non-empty subset of {', '.join(STAGES)}: {unknown}")
    ordered = tuple(s for s in STAGES if s in stages)
    cfg = (config or Config()).validate()
    if "embed" in ordered and input_uri is None:
        raise ConfigError("the embed stage needs an input")
    return run_command(
        ordered[0] if len(ordered) == 1 else "run",
        out_uri,
        cfg,
        input_uri if "embed" in ordered else None,
        ordered,
        show_progress=show_progress,
        accept_removals=accept_removals,
    )


class RunOutputs:
    """A run's output root, read back as Arrow tables (docs/FORMATS.md names every column).

    Each method reads the files when called, so an object kept open sees the next run's
    outputs. A table that a stage has not written yet raises ``FacesieveError`` naming the
    command that writes it.
    """

    def __init__(self, out_uri: str, s3_endpoint: str | None = None) -> None:
        self.store = open_store(out_uri, s3_endpoint)
        if not self.store.exists(RUN_KEY):
            raise ConfigError(f"{out_uri} is not a facesieve output root (no {RUN_KEY})")

    def run_info(self) -> dict[str, Any]:
        """``run.json``: the last run's config, versions, timings and counts."""
        return json.loads(self.store.read_bytes(RUN_KEY))

    def summary(self) -> dict[str, Any]:
        """``report/summary.json``: counts per status, reason and action."""
        return json.loads(self._read("report/summary.json", "clean"))

    def images(self, columns: list[str] | None = None) -> pa.Table:
        """One row per input file, every shard, in shard order."""
        return self._folder("images", columns or list(schema.IMAGES.names))

    def faces(self, columns: list[str] | None = None) -> pa.Table:
        """One row per face; pass ``columns`` without ``embedding`` to read much less."""
        return self._folder("faces", columns or list(schema.FACES.names))

    def clusters(self) -> pa.Table:
        """``clusters/faces.parquet``: face_id -> cluster_id (-1: noise), probability."""
        return self._table("clusters/faces.parquet", "cluster")

    def identities(self) -> pa.Table:
        """``clusters/identities.parquet``: one row per cluster."""
        return self._table("clusters/identities.parquet", "cluster")

    def actions(self) -> pa.Table:
        """``report/actions.parquet``: one row per input file with its action and reasons."""
        return self._table("report/actions.parquet", "clean")

    def changes(self) -> pa.Table:
        """``report/changes.parquet``: what changed since the previous report."""
        return self._table("report/changes.parquet", "clean")

    def _read(self, key: str, command: str) -> bytes:
        self._require(key, command)
        return self.store.read_bytes(key)

    def _table(self, key: str, command: str) -> pa.Table:
        self._require(key, command)
        return read_parquet(self.store, key)

    def _require(self, key: str, command: str) -> None:
        if not self.store.exists(key):
            raise FacesieveError(
                f"{self.store.uri(key)} does not exist yet: run `facesieve {command}` first"
            )

    def _folder(self, folder: str, columns: list[str]) -> pa.Table:
        table = read_folder(self.store, folder, columns)
        if table is None:
            raise FacesieveError(
                f"{self.store.uri(folder)} holds no shards yet: run `facesieve embed` first"
            )
        return table


def open_run(out_uri: str, s3_endpoint: str | None = None) -> RunOutputs:
    """The outputs of a run at ``out_uri`` (a folder or ``s3://bucket/prefix``)."""
    return RunOutputs(out_uri, s3_endpoint)


def _from_array(pixels: np.ndarray, max_pixels: int) -> Decoded:
    if pixels.dtype != np.uint8:
        return Decoded(schema.DECODE_ERROR, f"array of {pixels.dtype}, expected uint8 pixels")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        return Decoded(schema.DECODE_ERROR, f"array of shape {pixels.shape}, expected (H, W, 3)")
    height, width = pixels.shape[:2]
    if width * height > max_pixels:
        return Decoded(schema.TOO_LARGE, f"{width}x{height} pixels, limit is {max_pixels}")
    return Decoded(schema.OK, None, np.ascontiguousarray(pixels), width, height)


def _faces_table(rows: list[tuple[int, int, Face]]) -> pa.Table:
    def fixed(values: list[np.ndarray], width: int) -> pa.Array:
        flat = np.concatenate([v.reshape(-1) for v in values]) if values else np.zeros(0)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat.astype(np.float32)), width)

    faces = [f for _, _, f in rows]
    columns = {
        "index": pa.array([i for i, _, _ in rows], pa.int32()),
        "face_index": pa.array([k for _, k, _ in rows], pa.int32()),
        "bbox": fixed([f.bbox for f in faces], 4),
        "landmarks": fixed([f.landmarks for f in faces], 10),
        "det_score": pa.array([f.det_score for f in faces], pa.float32()),
        "face_px": pa.array([f.face_px for f in faces], pa.float32()),
        "sharpness": pa.array([f.sharpness for f in faces], pa.float32()),
        "yaw": pa.array([f.yaw for f in faces], pa.float32()),
        "embedding": fixed([f.embedding for f in faces], schema.EMBEDDING_DIM),
    }
    return pa.Table.from_pydict(columns, schema=EMBED_FACES)
