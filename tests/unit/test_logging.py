"""Secrets never reach a log line, whatever key or URL they hide in."""

from __future__ import annotations

import json

import pytest

from common.logging import configure_logging


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
