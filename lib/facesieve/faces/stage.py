"""The embed stage: one shard of images in, ``images`` and ``faces`` tables out.

It holds the logic only; listing, skipping, retries, writing and progress belong to the runner.
Reading and decoding run on a background thread that fills a small queue, so the next chunk is
decoded (Pillow and cv2 release the GIL) while the models work on the current one.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from facesieve import schema
from facesieve.config import Config
from facesieve.faces.decode import Decoded, decode_image
from facesieve.faces.engine import Face, FaceEngine
from facesieve.sources import Record, Shard, iter_records
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

_END = object()


@dataclass(frozen=True)
class ShardOutput:
    """What a stage produced for one shard: tables by output folder, and additive stats."""

    tables: dict[str, pa.Table]
    stats: dict[str, Any]


class EmbedStage:
    """decode -> detect -> align -> embed for every record of a shard."""

    name = "embed"

    def __init__(self, config: Config, input_store: Store) -> None:
        self.config = config
        self.input_store = input_store
        self.engine: FaceEngine | None = None

    def setup(self, device: str, threads: int) -> None:
        """Load the models; called once per worker, not once per shard."""
        self.engine = FaceEngine(self.config.faces, device=device, threads=threads)

    def process(self, shard: Shard, progress: Callable[[int], None] | None = None) -> ShardOutput:
        if self.engine is None:
            raise RuntimeError("EmbedStage.setup() must run before process()")
        started = time.perf_counter()
        images = _Columns(schema.IMAGES)
        faces = _Columns(schema.FACES)
        statuses: Counter[str] = Counter()
        n_bytes = 0
        # Images analysed together: enough to fill the batches, few enough to bound memory.
        chunk_size = max(self.engine.det_batch, self.engine.embed_batch)
        for chunk in _chunks(self._decoded(shard, 2 * chunk_size), chunk_size):
            ok = [(rec, dec) for rec, dec in chunk if dec.status == schema.OK]
            found = iter(self.engine.analyze([dec.pixels for _, dec in ok]) if ok else [])
            for rec, dec in chunk:
                image_faces = next(found) if dec.status == schema.OK else []
                status = dec.status
                if status == schema.OK and not image_faces:
                    status = schema.NO_FACE
                statuses[status] += 1
                n_bytes += rec.size
                images.append(_image_row(shard.shard_id, rec, dec, status, len(image_faces)))
                for k, face in enumerate(image_faces):
                    faces.append(_face_row(rec, k, face, self.engine.model_tag))
            if progress:
                progress(len(chunk))
        seconds = time.perf_counter() - started
        n_images = sum(statuses.values())
        stats = {
            "images": n_images,
            "faces": len(faces),
            "bytes": n_bytes,
            "status": dict(sorted(statuses.items())),
            "seconds": round(seconds, 3),
        }
        return ShardOutput({"images": images.table(), "faces": faces.table()}, stats)

    def _decoded(self, shard: Shard, prefetch: int) -> Iterator[tuple[Record, Decoded]]:
        """Records with decoded pixels, produced by a background thread, in shard order."""
        src = self.config.source
        q: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                for rec in iter_records(self.input_store, shard, src.max_image_bytes):
                    if stop.is_set():
                        return
                    if rec.status is not None:
                        dec = Decoded(rec.status, rec.error)
                    else:
                        dec = decode_image(rec.data or b"", src.max_pixels, src.max_image_bytes)
                    q.put((rec, dec))
                q.put(_END)
            except BaseException as exc:  # surfaced in the consumer, which fails the shard
                q.put(exc)

        thread = threading.Thread(target=produce, name=f"decode-{shard.shard_id}", daemon=True)
        thread.start()
        try:
            while (item := q.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _image_row(
    shard_id: str, rec: Record, dec: Decoded, status: str, n_faces: int
) -> dict[str, Any]:
    return {
        "image_id": rec.image_id,
        "shard_id": shard_id,
        "uri": rec.uri,
        "label": rec.label,
        "width": dec.width,
        "height": dec.height,
        "bytes": rec.size,
        "sha256": hashlib.sha256(rec.data).hexdigest() if rec.data is not None else None,
        "status": status,
        "error": dec.error,
        "n_faces": n_faces,
    }


def _face_row(rec: Record, index: int, face: Face, model: str) -> dict[str, Any]:
    return {
        "face_id": schema.face_id(rec.image_id, index),
        "image_id": rec.image_id,
        "label": rec.label,
        "face_index": index,
        "bbox": face.bbox.astype(np.float32),
        "landmarks": face.landmarks.reshape(-1).astype(np.float32),
        "det_score": face.det_score,
        "face_px": face.face_px,
        "sharpness": face.sharpness,
        "yaw": face.yaw,
        "embedding": face.embedding,
        "model": model,
    }


class _Columns:
    """Row dicts accumulated column-wise; fixed-size list columns are built from one array."""

    def __init__(self, arrow_schema: pa.Schema) -> None:
        self.schema = arrow_schema
        self.cols: dict[str, list[Any]] = {f.name: [] for f in arrow_schema}

    def append(self, row: dict[str, Any]) -> None:
        for name, col in self.cols.items():
            col.append(row[name])

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def table(self) -> pa.Table:
        arrays = []
        for field in self.schema:
            values = self.cols[field.name]
            if pa.types.is_fixed_size_list(field.type):
                width = field.type.list_size
                flat = (
                    np.asarray(values, np.float32).reshape(-1)
                    if values
                    else np.zeros(0, np.float32)
                )
                arrays.append(
                    pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width)
                )
            else:
                arrays.append(pa.array(values, type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)
