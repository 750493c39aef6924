"""Structured logs (JSON lines by default) with secrets redacted before anything is written.

Redaction works on key names, so a secret passed as ``api_key=...`` or nested in a dict never
reaches a log line even if a caller forgets; ``SecretStr`` values print masked on their own.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api[_-]?key|authorization|credential)", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
REDACTED = "***"


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, str) and "://" in value:
        return _URL_PASSWORD.sub(r"\1***\3", value)
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask values whose key looks secret and passwords inside URLs."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> structlog.stdlib.BoundLogger:
    """Configure structlog + stdlib logging once per process and return the service's logger."""
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=getattr(logging, level.upper()))
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # Resolve sys.stderr at each use, not at configure time: test runners and daemonizing
        # wrappers swap it, and a logger holding a closed stream would crash the service.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    return structlog.get_logger(service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
