"""S3 (and S3-compatible) store through boto3.

Credentials come from boto3's standard chain (environment, profile, instance role) and are never
logged or put in messages. An endpoint override (``--s3-endpoint`` or ``AWS_ENDPOINT_URL``) reaches
MinIO, SeaweedFS, Ceph and the like. boto3 retries each request a few times (adaptive mode, a few
seconds in all); what still fails raises ``StorageError`` marked transient (network errors,
timeouts, 5xx, throttling) or not (access denied, no such key or bucket), so the executor can ride
out a longer outage with its own backoff and readers can turn a missing object into a row.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from facesieve.errors import ConfigError, StorageError
from facesieve.redact import redact_text, redact_uri, register_credentials
from facesieve.storage.base import ObjectInfo

log = logging.getLogger(__name__)

_RETRY = {"max_attempts": 8, "mode": "adaptive"}
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequests",
    "500",
    "502",
    "503",
    "504",
    "OperationAborted",
}
PART_BYTES = 16 << 20  # multipart part size: S3 wants >= 5 MiB and at most 10,000 parts
_CONFLICT_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix``)."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    if not bucket:
        raise ConfigError(f"S3 URI has no bucket: {uri!r}")
    return bucket, prefix.strip("/")


def _code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return str(response["Error"].get("Code", "")) or None
    return None


def _describe(exc: Exception) -> str:
    """An error text without request signatures or credentials: code and message only."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return type(exc).__name__


def _transient(exc: Exception) -> bool:
    """Network trouble, timeouts, 5xx and throttling: worth trying again later."""
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )
    from botocore.exceptions import (
        HTTPClientError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(exc, (BotoConnectionError, HTTPClientError, ReadTimeoutError)):
        return True
    if isinstance(exc, (ResponseStreamingError, ConnectionError, TimeoutError)):
        return True
    code = _code(exc)
    if code is None:
        return False
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return code in _TRANSIENT_CODES or int(status or 0) >= 500


class _Stream(io.RawIOBase):
    """A response body whose read errors are ``StorageError``s, not OSErrors: a connection lost
    in the middle of a tar must fail the unit (and be retried), not look like a damaged tar."""

    def __init__(self, body: Any, fail: Callable[[Exception], StorageError]) -> None:
        self._body, self._fail = body, fail

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except Exception as exc:
            raise self._fail(exc) from None

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class _Upload(io.RawIOBase):
    """Bytes written in parts: a single PUT when it all fits one part, a multipart upload
    (created on the first full part, completed on ``commit``, aborted on ``abort``) otherwise.
    S3 shows a multipart object only once it is completed, so either way it appears whole."""

    def __init__(self, store: S3Store, key: str, part_bytes: int) -> None:
        self._store, self._key, self._part_bytes = store, key, part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= self._part_bytes:
            self._send(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]
        return len(data)

    def _send(self, part: bytes) -> None:
        client, bucket, full = self._store.client, self._store.bucket, self._store._key(self._key)
        try:
            if self._upload_id is None:
                answer = client.create_multipart_upload(Bucket=bucket, Key=full)
                self._upload_id = answer["UploadId"]
            number = len(self._parts) + 1
            answer = client.upload_part(
                Bucket=bucket, Key=full, UploadId=self._upload_id, PartNumber=number, Body=part
            )
            self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        except Exception as exc:
            raise self._store._fail("write", self._key, exc) from None

    def commit(self) -> None:
        if self._upload_id is None:
            self._store.write_bytes(self._key, bytes(self._buffer))
            return
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        try:
            self._store.client.complete_multipart_upload(
                Bucket=self._store.bucket,
                Key=self._store._key(self._key),
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            raise self._store._fail("write", self._key, exc) from None

    def abort(self) -> None:
        if self._upload_id is not None:
            try:
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._store._key(self._key),
                    UploadId=self._upload_id,
                )  # fmt: skip
            except Exception as exc:  # the write already failed; an orphan part is S3's to expire
                log.warning("could not abort the upload of %s: %s", self._key, _describe(exc))


class S3Store:
    random_access = False  # open_read streams one GET; ranged reads are not implemented

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
            session = boto3.session.Session()
            try:
                self._client = session.client("s3", endpoint_url=self.endpoint, config=cfg)
            except ValueError as exc:  # botocore's text repeats the URL, userinfo and all
                raise ConfigError(
                    f"invalid S3 endpoint {redact_uri(self.endpoint)!r}: {redact_text(str(exc))}"
                ) from None
            register_credentials(session.get_credentials())  # masked in every log line
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _fail(self, action: str, key: str, exc: Exception) -> StorageError:
        return StorageError(
            f"cannot {action} {self.uri(key)}: {_describe(exc)}", _transient(exc), _code(exc)
        )

    def root_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise self._fail("open bucket", "", exc) from None

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
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as exc:
            raise self._fail("read", key, exc) from None
        return cast(BinaryIO, _Stream(body, lambda exc: self._fail("read", key, exc)))

    def write_bytes(self, key: str, data: bytes) -> None:
        try:  # a single PUT is atomic: readers never see a partial object
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise self._fail("write", key, exc) from None

    @contextmanager
    def open_write(self, key: str, part_bytes: int = PART_BYTES) -> Iterator[BinaryIO]:
        """Streamed in parts of ``part_bytes`` (a multipart upload past the first part)."""
        upload = _Upload(self, key, part_bytes)
        try:
            yield cast(BinaryIO, upload)
        except BaseException:
            upload.abort()
            raise
        try:
            upload.commit()
        except BaseException:
            upload.abort()
            raise

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return obj["Body"].read(), str(obj.get("ETag", ""))
        except Exception as exc:
            raise self._fail("read", key, exc) from None

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> str | None:
        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, **condition
            )
            return str(answer.get("ETag", ""))
        except Exception as exc:
            if _code(exc) in _CONFLICT_CODES:
                return None
            raise self._fail("write", key, exc) from None

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """A conditional PUT (``If-None-Match: *``): S3 creates the object at most once."""
        return self._conditional_put(key, data, IfNoneMatch="*")

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """A conditional PUT (``If-Match: ETAG``): compare and swap on the object's ETag."""
        return self._conditional_put(key, data, IfMatch=tag)

    def sweep_partial(self) -> int:
        """Nothing to do: a PUT is all or nothing, S3 never holds a partial object."""
        return 0

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise self._fail("delete", key, exc) from None
