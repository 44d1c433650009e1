"""S3 (and S3-compatible) store through boto3.

Credentials come from boto3's standard chain (environment, profile, instance role) and are never
logged or put in messages. An endpoint override (``--s3-endpoint`` or ``AWS_ENDPOINT_URL``) reaches
MinIO, SeaweedFS, Ceph and the like. Transient failures are retried with boto3's adaptive backoff.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from facesieve.errors import ConfigError, StorageError
from facesieve.storage.base import ObjectInfo

_RETRY = {"max_attempts": 8, "mode": "adaptive"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ConfigError(f"S3 URI has no bucket: {uri!r}")
    return bucket, prefix.strip("/")


def _describe(exc: Exception) -> str:
    """An error text without request signatures or credentials: code and message only."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return type(exc).__name__


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", endpoint: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # boto3 clients do not pickle; each Ray worker builds its own from its own credentials.
        state = self.__dict__.copy()
        state["_client"] = None
        return state

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            cfg = Config(
                retries=_RETRY, connect_timeout=10, read_timeout=120, max_pool_connections=32
            )
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, config=cfg
            )
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _fail(self, action: str, key: str, exc: Exception) -> StorageError:
        return StorageError(f"cannot {action} {self.uri(key)}: {_describe(exc)}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = self._key(prefix)
        if full and not full.endswith("/"):
            full += "/"
        strip = len(f"{self.prefix}/") if self.prefix else 0
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][strip:]
                    if key and not key.endswith("/"):
                        found.append(
                            ObjectInfo(key, int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))
                        )
        except Exception as exc:
            raise self._fail("list", prefix, exc) from None
        yield from sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._fail("check", key, exc) from None

    def read_bytes(self, key: str) -> bytes:
        with self.open_read(key) as body:
            try:
                return body.read()
            except Exception as exc:
                raise self._fail("read", key, exc) from None

    def open_read(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        try:  # a single PUT is atomic: readers never see a partial object
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail("write", key, exc) from None

    def sweep_partial(self) -> int:
        """Nothing to do: a PUT is all or nothing, S3 never holds a partial object."""
        return 0

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._fail("delete", key, exc) from None
