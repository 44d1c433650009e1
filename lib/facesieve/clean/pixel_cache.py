"""Pixel scores of near-duplicate candidate pairs, kept from one report to the next.

Checking a candidate pair means reading and decoding both images, the only part of the rules
whose cost grows with image size: at a million photos that is tens of thousands of decodes a
night for pairs that were already checked. A pair's score is a pure function of the two images'
bytes, the landmarks of the faces that frame them (none for a whole-photo frame) and the decode
limit, so it is kept under a key made of exactly those (``face_key``: SHA-256 of the image and
the landmarks, for the reference image and the compared one, in that order: the score is not
symmetric), and reused while the key matches. A renamed file keeps its scores; a changed file or
a changed detector gets a new key and is checked again. Only scores are kept, never "could not
read": a file that failed to read back is tried again next time. The file holds the current
candidates' scores only, so it does not grow with history; a cache written by another score
version or decode limit is ignored.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pyarrow as pa

from facesieve.clean.pixels import SCORE_VERSION
from facesieve.outputs import parquet_bytes, read_parquet
from facesieve.storage.base import Store

log = logging.getLogger(__name__)

PIXEL_SCORES_KEY = "report/pixel_scores.parquet"
PairKey = tuple[bytes, bytes]  # (reference key, compared key)

_SCHEMA = pa.schema(
    [
        pa.field("face_a", pa.binary(16), nullable=False),
        pa.field("face_b", pa.binary(16), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
    ]
)
_META_VERSION = b"facesieve.score_version"
_META_PIXELS = b"facesieve.max_pixels"


def face_key(sha256: str, landmarks: np.ndarray | None) -> bytes:
    """What an image's side of a score depends on: its bytes (by hash) and the landmarks of the
    face that frames it (None: the whole photo)."""
    h = hashlib.blake2b(sha256.encode("ascii"), digest_size=16)
    if landmarks is not None:
        h.update(np.ascontiguousarray(landmarks, np.float32).tobytes())
    return h.digest()


def load_scores(out: Store, max_pixels: int) -> dict[PairKey, float]:
    """The scores the previous report kept; empty when there is none or it does not apply."""
    if not out.exists(PIXEL_SCORES_KEY):
        return {}
    table = read_parquet(out, PIXEL_SCORES_KEY)
    meta = table.schema.metadata or {}
    wanted = {_META_VERSION: str(SCORE_VERSION).encode(), _META_PIXELS: str(max_pixels).encode()}
    if any(meta.get(k) != v for k, v in wanted.items()):
        log.info("pixel scores of the previous report were made differently: checking again")
        return {}
    cols = table.to_pydict()
    return dict(zip(zip(cols["face_a"], cols["face_b"], strict=True), cols["score"], strict=True))


def scores_bytes(scores: dict[PairKey, float], max_pixels: int) -> bytes:
    """``scores`` as the Parquet file ``load_scores`` reads, sorted so reruns write the same."""
    items = sorted(scores.items())
    table = pa.table(
        {
            "face_a": [k[0] for k, _ in items],
            "face_b": [k[1] for k, _ in items],
            "score": [s for _, s in items],
        },
        schema=_SCHEMA,
    )
    meta = {_META_VERSION: str(SCORE_VERSION).encode(), _META_PIXELS: str(max_pixels).encode()}
    return parquet_bytes(table.replace_schema_metadata(meta))
