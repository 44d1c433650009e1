"""The embed step: one shard of the ledger in, ``images`` and ``faces`` tables out.

It holds the logic only (the executor runs it). Units are the ledger's shards; a unit's digest
covers the model and config fingerprint, the shard's number and every file's key, slot, size and
change tag, so a shard is redone exactly when one of its files was added, changed or removed.
Redoing it reuses the rows of every file that did not change (same size and tag; for a tar
member, the same SHA-256): a deleted photo costs a rewrite of its shard's Parquet files, not a
new embedding of the shard.

Every core a worker is given stays busy inside one shard: a reader thread takes the shard's
files in order and hands each to a small thread pool (as many threads as the worker's share of
cores) that decodes it (large JPEGs at a reduced scale, ``source.draft_decode``), computes the
photo descriptor and the detector input; the inference thread runs the detector on chunks of
those, hands the alignment warps back to the pool, and embeds the crops. Pillow, cv2, numpy and
onnxruntime release the GIL, so the pool works on the next chunk while the models run on this
one. Results are taken in file order, and neither onnxruntime's thread count nor its batch
composition changes its output, so the rows are the same with one thread or many.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from facesieve import schema
from facesieve.config import Config
from facesieve.errors import StorageError
from facesieve.faces.decode import Decoded, decode_image
from facesieve.faces.engine import Face, FaceEngine, Prepared
from facesieve.faces.photo import photo_descriptor
from facesieve.outputs import faces_key, images_key, parquet_bytes, read_parquet
from facesieve.sources import Ledger, Record, ShardWork, iter_records
from facesieve.storage.base import Store
from facesieve.work import Marker, Resources, Unit, UnitOutput, digest
from facesieve.work.contract import Progress

log = logging.getLogger(__name__)

_END = object()
VERSION = 2  # bump when the same files and settings give different rows (2: reduced decoding)
DRAFT_MARGIN = 1  # reduced JPEG decoding keeps the longer side >= this many detector inputs
REUSABLE = schema.DECODED  # rows whose work is worth keeping (read errors are not)
FINGERPRINT_KEY = "facesieve.fingerprint"  # Parquet metadata of images/<shard>.parquet


@dataclass(frozen=True)
class _Item:
    """One file after the preprocessing threads: ``dec`` is None for a reused row."""

    rec: Record
    dec: Decoded | None
    desc: bytes | None = None
    prepared: Prepared | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class _Previous:
    """The rows a shard had, by image id: what a redo of the shard may keep."""

    images: dict[str, dict[str, Any]]
    faces: dict[str, list[dict[str, Any]]]


class EmbedStep:
    """decode -> detect -> align -> embed for every file of a shard."""

    name = "embed"
    item_name = "images"
    owned_prefixes = ("images/", "faces/")

    def __init__(
        self, config: Config, input_store: Store, out: Store, ledger: Ledger, fingerprint: str
    ) -> None:
        self.config = config
        self.input_store = input_store
        self.out = out
        self.ledger = ledger
        self.fingerprint = fingerprint
        self.resources = Resources(cpus=1.0, gpus=1.0 / config.run.gpu_workers_per_device)
        self.engine: FaceEngine | None = None
        self.threads = 1  # preprocessing threads; setup() sets the worker's share of cores

    def plan(self, done: dict[str, Marker]) -> list[Unit]:
        units = []
        files = self.ledger.shard_files()
        for shard in sorted(self.ledger.shards.values(), key=lambda s: s.number):
            entries = tuple(files[shard.shard_id])
            work = ShardWork(
                shard.shard_id, shard.number, shard.kind, shard.uri, self.ledger.layout, entries
            )
            d = digest(
                self.name,
                VERSION,
                self.fingerprint,
                shard.number,
                [(e.key, e.slot, e.size, e.tag, e.problem) for e in entries],
            )
            previous = done.get(shard.shard_id)
            # a tar's image count is known once it was read; a new tar counts as unknown (0)
            weight = (
                len(entries)
                if shard.kind != "tar"
                else (int(previous.stats.get("images", 0)) if previous else 0)
            )
            units.append(Unit(shard.shard_id, d, shard.uri, weight, work))
        return units

    def __getstate__(self) -> dict[str, Any]:
        # workers need no ledger (a million files' worth): units carry their shard's files
        return {**self.__dict__, "ledger": None, "engine": None}

    def setup(self, device: str, threads: int) -> None:
        """Load the models; once per worker, not once per shard."""
        self.engine = FaceEngine(self.config.faces, device=device, threads=threads)
        self.threads = threads if threads > 0 else (os.cpu_count() or 1)

    def process(self, unit: Unit, progress: Progress) -> UnitOutput:
        if self.engine is None:
            raise RuntimeError("EmbedStep.setup() must run before process()")
        work: ShardWork = unit.payload
        started = time.perf_counter()
        previous = self._previous(work.shard_id)
        images = _Columns(schema.IMAGES)
        faces = _Columns(schema.FACES)
        statuses: Counter[str] = Counter()
        n_bytes = reused = embedded = 0
        # Images analysed together: enough to fill the batches, few enough to bound memory.
        chunk_size = max(self.engine.det_batch, self.engine.embed_batch)
        tag = self.engine.model_tag
        with ThreadPoolExecutor(self.threads, thread_name_prefix="embed-prep") as pool:
            items = self._prepared(work, previous, pool, chunk_size)
            for chunk in _chunks(items, chunk_size):
                todo = [it for it in chunk if it.prepared is not None]
                found = iter(self._analyze(todo, pool))
                embedded += len(todo)
                for it in chunk:
                    if it.dec is None:  # reused: the previous rows, renamed to this shard and slot
                        row, face_rows = _reuse(previous, it.rec, work)
                        reused += 1
                    else:
                        image_faces = next(found) if it.prepared is not None else []
                        row, face_rows = _new_rows(it, image_faces, work, tag)
                    statuses[row["status"]] += 1
                    n_bytes += it.rec.size
                    images.append(row)
                    for face in face_rows:
                        faces.append(face)
                progress(len(chunk))
        seconds = time.perf_counter() - started
        stats = {
            "images": sum(statuses.values()),
            "faces": len(faces),
            "bytes": n_bytes,
            "reused": reused,  # rows kept from the shard's previous version
            "embedded": embedded,  # images that went through detection and embedding
            "status": dict(sorted(statuses.items())),
            "seconds": round(seconds, 3),
        }
        keys = [images_key(work.shard_id), faces_key(work.shard_id)]
        # the fingerprint travels with the rows: a later redo keeps them only if it matches
        table = images.table().replace_schema_metadata({FINGERPRINT_KEY: self.fingerprint})
        self.out.write_bytes(keys[0], parquet_bytes(table))
        self.out.write_bytes(keys[1], parquet_bytes(faces.table()))
        meta = {"fingerprint": self.fingerprint, "number": work.number}
        return UnitOutput(stats, keys, meta)

    def _previous(self, shard_id: str) -> _Previous:
        """The shard's rows from an earlier run with the same fingerprint, if there are any."""
        empty = _Previous({}, {})
        try:
            table = read_parquet(self.out, images_key(shard_id))
        except StorageError as exc:
            if exc.transient:
                raise
            return empty
        except (OSError, ValueError, pa.ArrowException):
            return empty
        meta = table.schema.metadata or {}
        if meta.get(FINGERPRINT_KEY.encode(), b"").decode() != self.fingerprint:
            return empty  # another model or config: nothing can be kept
        rows = {r["image_id"]: r for r in table.to_pylist() if r["status"] in REUSABLE}
        face_rows: dict[str, list[dict[str, Any]]] = {}
        if any(r["n_faces"] for r in rows.values()):
            # A unit stopped between its two writes (its worker's node lost, a SIGKILL) leaves
            # this shard's images file without its faces file, or beside an older one: an
            # image row is reused only with all its faces, anything else is embedded again.
            try:
                faces = read_parquet(self.out, faces_key(shard_id)).to_pylist()
            except StorageError as exc:
                if exc.transient:
                    raise
                return empty
            except (OSError, ValueError, pa.ArrowException):
                return empty
            for face in faces:
                face_rows.setdefault(face["image_id"], []).append(face)
        rows = {i: r for i, r in rows.items() if len(face_rows.get(i, ())) == r["n_faces"]}
        return _Previous(rows, face_rows)

    def _analyze(self, todo: list[_Item], pool: Executor) -> list[list[Face]]:
        """Detect on this thread, align on the pool, embed on this thread."""
        engine = self.engine
        assert engine is not None
        if not todo:
            return []
        prepared = [it.prepared for it in todo if it.prepared is not None]
        detections = engine.detect_prepared(prepared)
        return engine.finish(list(pool.map(engine.align, prepared, detections)))

    def _prepare(self, rec: Record) -> _Item:
        """Decode, describe and letterbox one file: runs on a preprocessing thread."""
        src = self.config.source
        if rec.reuse:
            return _Item(rec, None)
        sha = rec.sha256 or (hashlib.sha256(rec.data).hexdigest() if rec.data is not None else None)
        if rec.status is not None:
            return _Item(rec, Decoded(rec.status, rec.error), sha256=sha)
        data = rec.data or b""
        min_side = DRAFT_MARGIN * self.config.faces.det_size if src.draft_decode else 0
        dec = decode_image(data, src.max_pixels, src.max_image_bytes, min_side)
        if dec.pixels is None:
            return _Item(rec, dec, sha256=sha)
        assert self.engine is not None
        prepared = self.engine.prepare(dec.pixels, dec.scale, data if dec.scale > 1 else None)
        return _Item(rec, dec, photo_descriptor(dec.pixels), prepared, sha)

    def _prepared(
        self, work: ShardWork, previous: _Previous, pool: Executor, prefetch: int
    ) -> Iterator[_Item]:
        """The shard's files, preprocessed on ``pool``, in file order.

        A reader thread lists and reads the files (I/O must not stall the models) and submits
        each to the pool; at most ``prefetch`` files wait, done or not, which bounds memory.
        """
        src = self.config.source
        q: queue.Queue[Any] = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def reusable(uri: str, size: int, tag: str | None, sha: str | None) -> bool:
            row = previous.images.get(schema.stable_id(uri))
            if row is None:
                return False
            if sha is not None:
                return bool(row["sha256"] == sha)
            return bool(row["bytes"] == size and row["source_tag"] == tag)

        def produce() -> None:
            try:
                for rec in iter_records(self.input_store, work, src.max_image_bytes, reusable):
                    if stop.is_set():
                        return
                    q.put(pool.submit(self._prepare, rec))
                q.put(_END)
            except BaseException as exc:  # surfaced in the consumer, which fails the shard
                q.put(exc)

        thread = threading.Thread(target=produce, name=f"read-{work.shard_id}", daemon=True)
        thread.start()
        try:
            while (item := q.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                future: Future[_Item] = item
                yield future.result()
        finally:
            stop.set()
            while thread.is_alive():  # unblock a reader waiting on a full queue
                try:
                    pending = q.get_nowait()
                    if isinstance(pending, Future):
                        pending.cancel()
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


def _new_rows(
    item: _Item, found: list[Face], work: ShardWork, model: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rec, dec = item.rec, item.dec
    assert dec is not None
    if len(found) > schema.MAX_FACES_PER_IMAGE:
        log.warning(
            "%s: %d faces, keeping the %d most confident",
            rec.uri,
            len(found),
            schema.MAX_FACES_PER_IMAGE,
        )
        found = found[: schema.MAX_FACES_PER_IMAGE]
    status = dec.status
    if status == schema.OK and not found:
        status = schema.NO_FACE
    sha = item.sha256 or rec.sha256
    row = {
        "image_id": rec.image_id,
        "shard_id": work.shard_id,
        "uri": rec.uri,
        "label": rec.label,
        "width": dec.width,
        "height": dec.height,
        "bytes": rec.size,
        "sha256": sha,
        "status": status,
        "error": dec.error,
        "n_faces": len(found),
        "photo_desc": item.desc,
        "source_tag": rec.tag,
    }
    faces = [
        {
            "face_id": schema.face_id(rec.image_id, k),
            "image_id": rec.image_id,
            "label": rec.label,
            "face_index": k,
            "bbox": face.bbox.astype(np.float32),
            "landmarks": face.landmarks.reshape(-1).astype(np.float32),
            "det_score": face.det_score,
            "face_px": face.face_px,
            "sharpness": face.sharpness,
            "yaw": face.yaw,
            "embedding": face.embedding,
            "model": model,
            "index_id": schema.index_id(work.number, rec.slot, k),
        }
        for k, face in enumerate(found)
    ]
    return row, faces


def _reuse(
    previous: _Previous, rec: Record, work: ShardWork
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The previous rows of an unchanged file, with this run's shard, slot, label and tag."""
    row = dict(previous.images[rec.image_id])
    row.update(shard_id=work.shard_id, label=rec.label, source_tag=rec.tag)
    faces = []
    for face in previous.faces.get(rec.image_id, []):
        face = dict(face)
        face.update(
            label=rec.label, index_id=schema.index_id(work.number, rec.slot, face["face_index"])
        )
        faces.append(face)
    return row, faces


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
