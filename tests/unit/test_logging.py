"""Secrets never reach a log line, whatever key or URL they hide in."""

from __future__ import annotations

import io
import json
import logging

import pytest

from common.logging import configure_logging, register_secret


def test_secret_keys_and_url_passwords_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    log = configure_logging("test-service")
    log.info(
        "connecting",
        api_key="AKIA-very-secret",
        nested={"password": "hunter2hunter2", "host": "db"},
        url="postgresql://user:pa55word@db:5432/x",
        symbol="BTC/USD:USD",
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert "AKIA-very-secret" not in line and "hunter2hunter2" not in line and "pa55word" not in line
    assert record["api_key"] == "***"
    assert record["nested"] == {"password": "***", "host": "db"}
    assert record["url"] == "postgresql://user:***@db:5432/x"
    assert record["symbol"] == "BTC/USD:USD"
    assert record["service"] == "test-service"


def _log_like_libraries(key: str, own: io.StringIO) -> None:
    """What ccxt, sqlalchemy, uvicorn and urllib3 write at DEBUG (shapes taken from their code)."""
    headers = {"APIKey": key, "Authent": "c2lnbmVk+/="}
    logging.getLogger("ccxt.base.exchange").debug("%s %s, Request: %s %s", "POST", "https://x/o", headers, "")
    logging.getLogger("sqlalchemy.engine").info("connect postgresql://btcmeta:s3cretPassw0rd@db/x")
    lib = logging.getLogger("uvicorn.test-own-handler")  # a handler of its own, not propagating
    lib.propagate = False
    lib.handlers = [logging.StreamHandler(own)]
    lib.warning("Authorization: Bearer abcdefgh12345678 from %s", "10.0.0.1")
    lib.handlers = []
    try:
        raise RuntimeError(f"request failed with password={key}")
    except RuntimeError:
        logging.getLogger("urllib3.connectionpool").exception("boom")


def test_third_party_stdlib_loggers_are_scrubbed() -> None:
    """Libraries log through stdlib logging, some with handlers that never reach the root
    logger: every record is scrubbed all the same, known values and secret-looking pairs alike."""
    configure_logging("test-service", "DEBUG")
    key = "unit-test-fake-kraken-key-4f1e"
    register_secret(key)
    root, shared, own = logging.getLogger(), io.StringIO(), io.StringIO()
    handler, level = logging.StreamHandler(shared), root.level
    root.addHandler(handler)  # what a service's root handler writes (pytest holds stderr's)
    root.setLevel(logging.DEBUG)
    try:
        _log_like_libraries(key, own)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = shared.getvalue() + own.getvalue()
    leaked = sum(s in text for s in (key, "c2lnbmVk", "s3cretPassw0rd", "abcdefgh12345678"))
    assert leaked == 0  # a count: a failing test must not print the values either
    assert "'APIKey': '***'" in text and "Bearer ***" in text and "from 10.0.0.1" in text
    assert "RuntimeError" in text  # the traceback is kept, scrubbed


def test_structlog_tracebacks_and_known_values_are_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    """A secret inside an exception message, under an innocent key, or after a header name in a
    string: masked, and the line stays valid JSON (numbers under secret-looking keys included)."""
    log = configure_logging("test-service")
    register_secret("registered-value-9c1d7e")
    try:
        raise ValueError("login failed for postgresql://u:tb-s3cret-pw@db/x")
    except ValueError:
        log.exception("failed", detail="sent registered-value-9c1d7e", headers="{'APIKey': 'k-123456789'}")
    log.info("counted", token_count=3)
    lines = capsys.readouterr().err.strip().splitlines()
    failed, counted = json.loads(lines[-2]), json.loads(lines[-1])
    text = "\n".join(lines[-2:])
    assert sum(s in text for s in ("tb-s3cret-pw", "registered-value-9c1d7e", "k-123456789")) == 0
    assert "ValueError" in failed["exception"] and failed["headers"] == "{'APIKey': '***'}"
    assert counted["token_count"] == "***"  # masked by its key, still JSON
