"""Helpers for job-level tests: read an output root back as comparable tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from facesieve.config import Config


def local_config(**run: object) -> Config:
    cfg = Config().with_overrides("source", shard_size=16)
    return cfg.with_overrides("run", runner="local", device="cpu", **run).validate()


def read_outputs(out: Path) -> dict[str, pa.Table]:
    """images and faces of every shard, concatenated in a stable order."""
    tables = {}
    for folder, key in (("images", "image_id"), ("faces", "face_id")):
        parts = [pq.read_table(p) for p in sorted((out / folder).glob("*.parquet"))]
        tables[folder] = pa.concat_tables(parts).sort_by(key) if parts else None
    return tables


def marker_stats(out: Path) -> dict[str, dict]:
    """The embed done-markers' stats, by shard id."""
    return {
        p.stem: json.loads(p.read_text())["stats"] for p in (out / "_done" / "embed").glob("*.json")
    }


def assert_same_outputs(a: Path, b: Path) -> None:
    """Equal tables (embeddings to float tolerance) and the same set of files."""
    import numpy as np

    ta, tb = read_outputs(a), read_outputs(b)
    assert ta["images"].equals(tb["images"])
    fa, fb = ta["faces"], tb["faces"]
    assert fa.num_rows == fb.num_rows > 0
    assert fa.drop(["embedding"]).equals(fb.drop(["embedding"]))
    ea = np.stack(fa.column("embedding").to_numpy(zero_copy_only=False))
    eb = np.stack(fb.column("embedding").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(ea, eb, atol=1e-5)
    assert _files(a) == _files(b)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


S3_KEY, S3_SECRET = "AKIDFACESIEVETEST", "s3cr3t-Do-Not-Print-9f2c"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": S3_KEY,
    "AWS_SECRET_ACCESS_KEY": S3_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_SECRET, region_name="us-east-1")  # fmt: skip
