"""The Parquet contracts of docs/FORMATS.md (``images`` and ``faces``), in one place.

Users script against these columns; change them only together with the docs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

EMBEDDING_DIM = 512
PHOTO_DESC_BYTES = 128  # faces.photo.DIM

# images.status values
OK = "ok"
NO_FACE = "no_face"
DECODE_ERROR = "decode_error"
TOO_LARGE = "too_large"
UNSUPPORTED = "unsupported"
STATUSES = (OK, NO_FACE, DECODE_ERROR, TOO_LARGE, UNSUPPORTED)
DECODED = (OK, NO_FACE)  # files whose pixels were read

# file types read as images (by extension, lower case); anything else is ``unsupported``
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".pnm"}
)

IMAGES = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("bytes", pa.int64(), nullable=False),
        pa.field("sha256", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("n_faces", pa.int32(), nullable=False),
        # a descriptor of the whole photo (faces.photo) for near-duplicate candidates; null when
        # the file could not be decoded
        pa.field("photo_desc", pa.binary(PHOTO_DESC_BYTES)),
        # the listing's change tag (mtime_ns, ETag; for tar members size:mtime) when read: a
        # nightly run re-reads a file only when its size or tag changed
        pa.field("source_tag", pa.string()),
    ]
)

FACES = pa.schema(
    [
        pa.field("face_id", pa.string(), nullable=False),
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("face_index", pa.int32(), nullable=False),
        pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
        pa.field("landmarks", pa.list_(pa.float32(), 10), nullable=False),
        pa.field("det_score", pa.float32()),  # null for pre-aligned crops (no detection ran)
        pa.field("face_px", pa.float32(), nullable=False),
        pa.field("sharpness", pa.float32(), nullable=False),
        pa.field("yaw", pa.float32(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32(), EMBEDDING_DIM), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("index_id", pa.int64(), nullable=False),  # the face's key in index and graph
    ]
)


# index_id = shard_number << 32 | slot << 10 | face_index (docs/INDEX.md). The ledger gives each
# shard a number and each file a slot in it, never reused, so an id names one face of one
# version of one file for the life of OUT: a changed file gets a new slot, a changed tar a new
# shard number, and graph rows pointing at the old faces are found and refreshed.
FACE_BITS = 10
SLOT_BITS = 22
MAX_FACES_PER_IMAGE = 1 << FACE_BITS
MAX_SLOTS = 1 << SLOT_BITS


def index_id(shard_number: int, slot: int, face_index: int) -> int:
    if not (0 <= slot < MAX_SLOTS and 0 <= face_index < MAX_FACES_PER_IMAGE):
        raise ValueError(f"slot {slot} or face {face_index} out of range for an index id")
    return (shard_number << 32) | (slot << FACE_BITS) | face_index


def shard_number_of(ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids, np.int64) >> 32


def stable_id(text: str, length: int = 16) -> str:
    """Short hex id derived from a URI: the same input always gets the same id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def face_id(image_id: str, index: int) -> str:
    return f"{image_id}#{index}"
