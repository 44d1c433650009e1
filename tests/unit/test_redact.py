"""Credentials never reach a log line, a recorded URI or an error text (facesieve.redact)."""

from __future__ import annotations

import io
import logging

import pytest

from facesieve.redact import (
    MASK,
    RedactingFilter,
    install_redaction,
    redact_text,
    redact_uri,
    register_credentials,
    register_secret,
)

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://bob:pa55@minio.lan:9000", f"http://{MASK}@minio.lan:9000"),
        ("https://token@host/path?a=1", f"https://{MASK}@host/path?a=1"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("http://host/a@b.jpg", "http://host/a@b.jpg"),  # an @ in the path is not userinfo
        ("/data/faces@2x", "/data/faces@2x"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F2026&X-Amz-Signature=ab12&x=1",
            f"https://b.s3.amazonaws.com/k?X-Amz-Credential={MASK}&X-Amz-Signature={MASK}&x=1",
        ),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


def test_redact_uri_keeps_none() -> None:
    assert redact_uri(None) is None


def test_botocore_debug_lines_lose_every_credential() -> None:
    headers = (
        "Sending http request: <AWSPreparedRequest stream_output=False, method=GET, "
        "url=http://127.0.0.1:8333/b?list-type=2, headers={'User-Agent': b'Boto3/1.40', "
        f"'Authorization': b'AWS4-HMAC-SHA256 Credential={KEY_ID}/20261202/us-east-1/s3/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=9f86d081884c7d659a2feaa0c55ad015',"
        " 'X-Amz-Security-Token': b'FwoGZXIvYXdzEJr//////////wEaDOPAQUE', 'amz-sdk-request': b'1'}>"
    )
    out = redact_text(headers)
    for leaked in (KEY_ID, "9f86d081884c7d659a2feaa0c55ad015", "FwoGZXIvYXdzEJr", "aws4_request"):
        assert leaked not in out
    assert "'User-Agent': b'Boto3/1.40'" in out and "'amz-sdk-request': b'1'" in out
    assert redact_text("Authorization: Basic Ym9iOnBhNTU=\nnext") == f"Authorization: {MASK}\nnext"


def test_registered_secrets_and_credentials_are_masked() -> None:
    register_secret("short")  # under the minimum length: ordinary words stay readable
    register_secret("s3cr3t-Unit-Test-4411")

    class Creds:
        access_key, secret_key, token = "AKIDUNITTEST0001", SECRET, None

    register_credentials(Creds())
    text = redact_text(f"a short s3cr3t-Unit-Test-4411 AKIDUNITTEST0001 {SECRET}")
    assert text == f"a short {MASK} {MASK} {MASK}"


def _logger_with_filter() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test_redact.isolated")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_redacts_arguments_exceptions_and_stacks() -> None:
    logger, stream = _logger_with_filter()
    logger.info("endpoint %s key %s", "http://u:p4ss@h:1", KEY_ID)
    try:
        raise RuntimeError(f"signed url ?X-Amz-Signature=deadbeef key {KEY_ID}")
    except RuntimeError:
        logger.exception("failed")
    logger.debug("stack", stack_info=True)
    text = stream.getvalue()
    assert "p4ss" not in text and KEY_ID not in text and "deadbeef" not in text
    assert f"endpoint http://{MASK}@h:1 key {MASK}" in text
    assert "RuntimeError: signed url" in text and "Stack (most recent call last)" in text


def test_install_quiets_sdk_debug_unless_opted_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    saved = (root.level, logging.getLogger("botocore").level, logging.getLogger("urllib3").level)
    monkeypatch.setattr(root, "handlers", [handler])
    root.setLevel(logging.DEBUG)
    try:
        monkeypatch.setenv("FACESIEVE_SDK_DEBUG", "1")
        logging.getLogger("botocore").setLevel(logging.NOTSET)
        install_redaction()
        assert logging.getLogger("botocore").getEffectiveLevel() == logging.DEBUG  # opted in
        monkeypatch.delenv("FACESIEVE_SDK_DEBUG")
        install_redaction()
        install_redaction()  # idempotent: one filter per handler
        for name in ("botocore", "boto3", "s3transfer", "urllib3"):
            assert logging.getLogger(name).getEffectiveLevel() == logging.INFO
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-Secret-Value-77aa")
        install_redaction()
        assert "env-Secret-Value-77aa" not in redact_text("x env-Secret-Value-77aa y")
    finally:
        root.setLevel(saved[0])
        logging.getLogger("botocore").setLevel(saved[1])
        logging.getLogger("urllib3").setLevel(saved[2])
        for name in ("boto3", "s3transfer"):
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_cli_traceback_of_a_bug_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    from facesieve.cli.main import _redacted_excepthook

    try:
        raise ValueError(f"Could not connect to http://bob:pw-Leak-123@h:1/b key {KEY_ID}")
    except ValueError as exc:
        _redacted_excepthook(ValueError, exc, exc.__traceback__)
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: Could not connect" in err
    assert "pw-Leak-123" not in err and KEY_ID not in err


def test_install_covers_loggers_with_their_own_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's loggers do not propagate to the root: the record factory redacts them too."""
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())
    stream = io.StringIO()
    own = logging.getLogger("test_redact.own_handler")
    own.handlers[:] = [logging.StreamHandler(stream)]
    own.propagate = False
    own.setLevel(logging.INFO)
    install_redaction()
    install_redaction()  # the factory is wrapped once
    own.info("joining ray://u:tok-Leak-55@head:10001 with %s", KEY_ID)
    assert stream.getvalue() == f"joining ray://{MASK}@head:10001 with {MASK}\n"
