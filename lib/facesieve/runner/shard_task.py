"""The per-shard routine every executor calls: process, write outputs, then the marker."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.faces.stage import EmbedStage
from facesieve.runner.markers import Marker, write_marker
from facesieve.sources import Shard
from facesieve.storage.base import Store


def output_key(folder: str, shard_id: str) -> str:
    return f"{folder}/{shard_id}.parquet"


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def run_shard(
    stage: EmbedStage,
    shard: Shard,
    out: Store,
    fingerprint: str,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Process one shard and commit it; returns the shard's stats.

    Each file is written atomically and the marker last, so a crash at any point leaves either a
    committed shard or one that the next run redoes from scratch, overwriting the same paths.
    """
    result = stage.process(shard, progress)
    keys = []
    for folder, table in result.tables.items():
        key = output_key(folder, shard.shard_id)
        out.write_bytes(key, parquet_bytes(table))
        keys.append(key)
    write_marker(
        out,
        Marker(
            stage=stage.name,
            shard_id=shard.shard_id,
            uri=shard.uri,
            fingerprint=fingerprint,
            content_digest=shard.content_digest,
            stats=result.stats,
            outputs=keys,
        ),
    )
    return result.stats
