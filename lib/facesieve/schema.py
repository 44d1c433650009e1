"""The Parquet contracts of docs/FORMATS.md (``images`` and ``faces``), in one place.

Users script against these columns; change them only together with the docs.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

EMBEDDING_DIM = 512

# images.status values
OK = "ok"
NO_FACE = "no_face"
DECODE_ERROR = "decode_error"
TOO_LARGE = "too_large"
UNSUPPORTED = "unsupported"
STATUSES = (OK, NO_FACE, DECODE_ERROR, TOO_LARGE, UNSUPPORTED)

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
    ]
)


def stable_id(text: str, length: int = 16) -> str:
    """Short hex id derived from a URI: the same input always gets the same id."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def face_id(image_id: str, index: int) -> str:
    return f"{image_id}#{index}"
