"""Keep credentials out of logs, records and messages.

Two tools, both usable by library users:

* ``redact_uri`` / ``redact_text`` strip what a URL or a log line may carry: ``user:password@``,
  SigV4 ``Authorization`` values, presigned-URL query parameters (``X-Amz-Signature``,
  ``X-Amz-Credential``, ``X-Amz-Security-Token``), AWS access key ids, and every secret
  registered with ``register_secret`` (the CLI registers the AWS keys of the environment, the S3
  store those of each boto3 session it opens).
* ``install_redaction`` puts a ``RedactingFilter`` on the root logger's handlers and keeps the
  AWS SDK's debug loggers (botocore, boto3, s3transfer, urllib3) at INFO: their DEBUG output is
  made of signed requests. ``FACESIEVE_SDK_DEBUG=1`` opts in to SDK debug logging (still
  filtered) when an S3 problem needs it.

This module is at the bottom layer: it imports nothing from facesieve.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any

MASK = "REDACTED"
SDK_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3")
SDK_DEBUG_ENV = "FACESIEVE_SDK_DEBUG"
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")
_AUTH_HEADER = re.compile(
    r"(?i)\b(authorization|x-amz-security-token)(['\"]?\s*:\s*(?:b?['\"])?)"
    r"[^'\"\n]*"
)
_QUERY = re.compile(r"(?i)\b(x-amz-(?:signature|credential|security-token))=[^&\s'\"<>]*")
_SIGV4 = re.compile(r"(?i)\b(credential|signature)=[^,&\s'\"<>]+")
_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (too short values are ignored)."""
    if value and len(value) >= MIN_SECRET_LEN:
        with _lock:
            _secrets.add(value)


def register_env_secrets(env: dict[str, str] | None = None) -> None:
    """Register the AWS keys of the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    for name in SECRET_ENV:
        register_secret(env.get(name))


def register_credentials(credentials: Any) -> None:
    """Register a botocore credentials object's access key, secret key and token."""
    if credentials is None:
        return
    frozen = getattr(credentials, "get_frozen_credentials", None)
    creds = frozen() if callable(frozen) else credentials
    for name in ("access_key", "secret_key", "token"):
        register_secret(getattr(creds, name, None))


def redact_uri(uri: str | None) -> str | None:
    """``uri`` without ``user:password@`` and signed query parameters; None stays None."""
    if uri is None:
        return None
    return _QUERY.sub(rf"\1={MASK}", _USERINFO.sub(rf"\1{MASK}@", str(uri)))


def redact_text(text: str) -> str:
    """Every credential pattern and registered secret in ``text`` replaced by ``REDACTED``."""
    if not text:
        return text
    out = _USERINFO.sub(rf"\1{MASK}@", text)
    out = _QUERY.sub(rf"\1={MASK}", out)
    out = _AUTH_HEADER.sub(rf"\1\2{MASK}", out)
    out = _SIGV4.sub(rf"\1={MASK}", out)
    out = _KEY_ID.sub(MASK, out)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        out = out.replace(secret, MASK)
    return out


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, exception and stack text through ``redact_text``.

    Put it on handlers, not loggers: a logger's filters do not see records that propagate up
    from its children."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw text, still redacted
            message = str(record.msg)
        record.msg, record.args = redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactingFilter()


def _redacting_factory(
    previous: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _FILTER.filter(record)
        return record

    factory.facesieve_redacting = True  # type: ignore[attr-defined]
    return factory


def sdk_debug_enabled() -> bool:
    return os.environ.get(SDK_DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def install_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Filter every handler of ``logger`` (root by default) and, through the log record
    factory, every record any logger creates (Ray's own loggers keep their own handlers);
    register the environment's AWS keys; keep the SDK loggers at INFO unless
    ``FACESIEVE_SDK_DEBUG=1``. Idempotent."""
    target = logger or logging.getLogger()
    current = logging.getLogRecordFactory()
    if not getattr(current, "facesieve_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))
    register_env_secrets()
    existing = [f for h in target.handlers for f in h.filters if isinstance(f, RedactingFilter)]
    flt = existing[0] if existing else RedactingFilter()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(flt)
    if not sdk_debug_enabled():
        for name in SDK_LOGGERS:
            sdk = logging.getLogger(name)
            if sdk.getEffectiveLevel() < logging.INFO:
                sdk.setLevel(logging.INFO)
    return flt
