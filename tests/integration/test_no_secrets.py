"""`facesieve run -vv` (the real CLI in a subprocess, Ray workers, the real SeaweedFS S3 server
with signature checking) with credentials in the environment and ``user:password@`` in the
endpoint URL: no key, secret, password or request signature in stderr, stdout or any file the
run writes (run.json, summary.json, actions.csv/.parquet, index.html)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import S3_ENV, S3_KEY, S3_SECRET, s3_client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-Url-Pass-31c9"
FORBIDDEN = (S3_KEY, S3_SECRET, PASSWORD, "Authorization", "Signature=", "X-Amz-Credential")
REPORT = ("run.json", "report/summary.json", "report/actions.csv", "report/actions.parquet")


def _cli(args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FACESIEVE_SDK_DEBUG"}
    env.update({**S3_ENV, **(extra_env or {})})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "facesieve.cli.main", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def _leaks(text: str) -> list[str]:
    return [s for s in FORBIDDEN if s in text]


def test_verbose_s3_run_leaks_no_credentials(s3, demo_data: Path) -> None:
    client = s3_client(s3.endpoint)
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}
    for bucket in {"faces-in", "faces-out"} - existing:
        client.create_bucket(Bucket=bucket)
    for path in sorted(p for p in demo_data.rglob("*") if p.is_file()):
        client.upload_file(str(path), "faces-in", f"secrets/{path.relative_to(demo_data)}")
    endpoint = s3.endpoint.replace("http://", f"http://bob:{PASSWORD}@")
    out = "s3://faces-out/secrets"
    common = ["--s3-endpoint", endpoint, "--device", "cpu"]
    args = ["run", "s3://faces-in/secrets", "--out", out, *common, "--runner", "ray"]
    done = _cli([*args, "--workers", "2", "--set", "source.shard_size=40", "-vv", "--json"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert " DEBUG " in done.stderr and " INFO " in done.stderr  # -vv did log
    assert _leaks(done.stderr) == [] and _leaks(done.stdout) == []
    assert f"http://REDACTED@127.0.0.1:{s3.s3_port}" in done.stdout  # the endpoint, redacted

    listed = client.list_objects_v2(Bucket="faces-out", Prefix="secrets/report/data/")
    data_keys = [o["Key"].removeprefix("secrets/") for o in listed.get("Contents", [])]
    files = {
        key: client.get_object(Bucket="faces-out", Key=f"secrets/{key}")["Body"].read()
        for key in (*REPORT, "report/index.html", *data_keys)
    }
    assert b'"exit_code": 0' in files["run.json"] and b"review.js" in files["report/index.html"]
    assert "report/data/index.js" in files and any("chunk-" in k for k in files)
    for key, body in files.items():
        assert _leaks(body.decode("utf-8", "replace")) == [], key

    # opting in to the SDK's debug log shows botocore's requests, still without a credential
    again = _cli(["clean", out, *common, "--runner", "local", "-vv"], {"FACESIEVE_SDK_DEBUG": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "botocore" in again.stderr and "REDACTED" in again.stderr
    for secret in (S3_KEY, S3_SECRET, PASSWORD):
        assert secret not in again.stderr
    assert not re.search(r"Signature=[0-9a-f]{16}", again.stderr)
