"""S3 end to end against a real SeaweedFS server on 127.0.0.1: tar shards in a bucket in, Parquet
back into a bucket, on the Ray runner; and credentials that never leak into messages."""

import io
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from facesieve.cli.main import main
from facesieve.report.site import parse_js_call
from facesieve.runner.pipeline import run_embed
from tests.integration.helpers import S3_KEY, S3_SECRET, local_config, s3_client
from tests.integration.test_ray_runner import make_tars

pytestmark = pytest.mark.integration

KEY, SECRET = S3_KEY, S3_SECRET
_client = s3_client


def test_tar_shards_in_a_bucket_to_parquet_in_a_bucket(
    s3, creds, demo_data: Path, tmp_path: Path
) -> None:
    client = _client(s3.endpoint)
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}  # other tests share them
    for bucket in {"faces-in", "faces-out"} - existing:
        client.create_bucket(Bucket=bucket)
    tars = make_tars(demo_data, tmp_path / "tars", 3)
    for t in tars:
        client.upload_file(str(t), "faces-in", f"nightly/2026-11-23/{t.name}")
    cfg = local_config().with_overrides("run", runner="ray", workers=2, s3_endpoint=s3.endpoint)
    result = run_embed(
        "s3://faces-in/nightly/2026-11-23", "s3://faces-out/run1", cfg, show_progress=False
    )
    assert result.exit_code == 0 and result.steps["embed"].processed == 3

    listed = client.list_objects_v2(Bucket="faces-out", Prefix="run1/")["Contents"]
    keys = sorted(o["Key"] for o in listed)
    assert sum(k.startswith("run1/images/") for k in keys) == 3
    assert sum(k.startswith("run1/faces/") for k in keys) == 3
    assert sum(k.startswith("run1/_done/embed/") for k in keys) == 3
    assert "run1/run.json" in keys
    rows = []
    for key in (k for k in keys if k.startswith("run1/images/")):
        body = client.get_object(Bucket="faces-out", Key=key)["Body"].read()
        rows += pq.read_table(io.BytesIO(body)).to_pylist()
    n_jpgs = len(list(demo_data.rglob("*.jpg")))
    assert len(rows) == n_jpgs
    assert all(r["uri"].startswith("s3://faces-in/nightly/2026-11-23/shard-") for r in rows)
    assert {r["label"] for r in rows} == {p.name for p in demo_data.iterdir() if p.is_dir()}
    assert sum(r["status"] == "ok" for r in rows) >= n_jpgs - 4

    again = run_embed(
        "s3://faces-in/nightly/2026-11-23", "s3://faces-out/run1", cfg, show_progress=False
    )
    assert again.steps["embed"].skipped == 3 and again.steps["embed"].processed == 0


def test_wrong_secret_fails_cleanly_without_printing_it(
    s3,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-Secret-Value-7d1e"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _client(s3.endpoint).create_bucket(Bucket="locked")
    with caplog.at_level(logging.DEBUG, logger="facesieve"):
        args = ["embed", "s3://locked/in", "--out", "s3://locked/out", "--s3-endpoint", s3.endpoint]
        code = main([*args, "--runner", "local", "--device", "cpu"])
    out = capsys.readouterr()
    text = out.out + out.err + caplog.text
    assert code == 1
    assert "SignatureDoesNotMatch" in text or "AccessDenied" in text or "InvalidAccessKeyId" in text
    assert wrong not in text and SECRET not in text


def test_index_and_search_on_an_s3_output_root(
    s3, creds, demo_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    _client(s3.endpoint).create_bucket(Bucket="faces-index")
    out = "s3://faces-index/runs/demo"
    cfg = local_config().with_overrides("run", s3_endpoint=s3.endpoint)
    assert run_embed(str(demo_data), out, cfg, show_progress=False).exit_code == 0
    common = ["--s3-endpoint", s3.endpoint, "--json", "-q"]
    assert main(["index", out, "--runner", "local", "--knn-k", "5", *common]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["steps"]["index-fill"]["totals"]["vectors"] > 100
    assert info["steps"]["knn"]["processed"] == info["steps"]["knn"]["units"] > 0
    keys = {
        o["Key"] for o in _client(s3.endpoint).list_objects_v2(Bucket="faces-index")["Contents"]
    }
    assert "runs/demo/index/manifest.json" in keys
    assert any(k.startswith("runs/demo/index/knn/") for k in keys)
    query = demo_data / "gdp_01" / "3.jpg"
    assert main(["search", out, str(query), "-k", "3", "--device", "cpu", *common]) == 0
    top = json.loads(capsys.readouterr().out)["faces"][0]["matches"]
    assert top[0]["uri"] == str(query) and top[0]["label"] == "gdp_01"


def test_whole_pipeline_from_tar_shards_in_a_bucket(
    s3, creds, demo_data: Path, tmp_path: Path
) -> None:
    """Read-back of pixels (near duplicates, thumbnails) works on tar members in S3."""
    from facesieve.runner.pipeline import run_pipeline

    client = _client(s3.endpoint)
    # the buckets of the first test, or new ones when run alone: each bucket takes SeaweedFS
    # volumes, and the test server has few
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    for bucket in {"faces-in", "faces-out"} - existing:
        client.create_bucket(Bucket=bucket)
    for t in make_tars(demo_data, tmp_path / "tars", 2):
        client.upload_file(str(t), "faces-in", f"pipeline/{t.name}")
    cfg = local_config().with_overrides("run", s3_endpoint=s3.endpoint)
    result = run_pipeline("s3://faces-in/pipeline", "s3://faces-out/pipe", cfg, show_progress=False)
    assert result.exit_code == 0 and result.info["cluster"]["clusters"] > 5
    reasons = result.info["report"]["reasons"]
    assert reasons.get("near_duplicate", 0) >= 10 and reasons.get("mislabeled", 0) >= 1
    page = client.get_object(Bucket="faces-out", Key="pipe/report/index.html")["Body"].read()
    listed = client.list_objects_v2(Bucket="faces-out", Prefix="pipe/report/data/chunk-")
    cells = 0  # thumbnails read back from the tars
    for obj in listed["Contents"]:
        data = client.get_object(Bucket="faces-out", Key=obj["Key"])["Body"].read()
        for item in parse_js_call(data)[1]:
            cells += item["t"] >= 0
    assert cells >= 20
    sheet = client.get_object(Bucket="faces-out", Key="pipe/report/thumbs/sheet-1.jpg")
    assert sheet["Body"].read()[:2] == b"\xff\xd8"  # a JPEG
    summary = client.get_object(Bucket="faces-out", Key="pipe/report/summary.json")["Body"].read()
    for blob in (page, summary):
        assert SECRET.encode() not in blob and KEY.encode() not in blob
