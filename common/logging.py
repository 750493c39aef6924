"""Structured logs (JSON lines by default) with secrets redacted before anything is written.

Redaction is structural, in this one module, for every log path a process has:

* structlog lines: values under secret-looking keys are masked, every string (the rendered
  traceback too) is scrubbed, and the rendered line gets a last pass for known values;
* stdlib ``logging`` (ccxt, urllib3, confluent_kafka, sqlalchemy, uvicorn, ...): every record is
  scrubbed when it is created (a log-record factory), so it does not matter which logger or
  handler a library set up, nor whether it propagates to the root logger.

Scrubbing masks (1) every secret value the process knows of (registered by ``Settings.resolved``,
the bridge's tokens, the local database password, and ``BTCMETA_*`` secrets in the environment),
and (2) what looks like a secret whatever its value: ``Authorization``/``APIKey``/``Authent``
headers, ``password=``/``token=`` pairs and passwords inside URLs. Known values are what make
this hold for a header name nobody thought of: CCXT prints Kraken's ``APIKey`` header in its debug
logs, and the key itself is registered, so it is masked wherever it turns up.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

import structlog

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api[_-]?key|authorization|authent|credential)", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
#: ``key: value`` / ``key=value`` pairs whose key names a secret (headers, DSNs, query strings,
#: dict reprs). ``Bearer``/``Basic`` schemes are kept so a reader still sees what kind it was.
_SECRET_PAIR = re.compile(
    r"""(?ix)
    (?P<key>["']?[\w-]*(?:authorization|apikey|api[_-]?key|api[_-]?secret|authent|secret|password
        |passwd|pwd|token|cookie|credential)[\w-]*["']?)
    (?P<sep>\s*[:=]\s*)
    (?P<quote>["']?)
    (?P<scheme>(?:bearer|basic|token|digest)\s+)?
    (?P<value>[^"'\s,;&}\])]+)
    """
)
REDACTED = "***"
#: Shorter registered values are ignored: masking every "admin" or "btc" would garble the logs
#: and such values are not secrets worth the name (the bridge refuses tokens under 8 characters).
MIN_SECRET_LENGTH = 8

_known: set[str] = set()
_known_sorted: tuple[str, ...] = ()
_lock = threading.Lock()


# --------------------------------------------------------------------------------------- registry


def register_secret(value: Any) -> None:
    """Mask ``value`` (a str or a pydantic ``SecretStr``) in every log line from now on.

    Also registers the forms the value takes inside URLs (percent-encoded) and, for a URL, the
    password it carries, because that is how a database password reaches a driver's error text.
    """
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    if not isinstance(raw, str) or raw.startswith("op://"):
        return  # a 1Password reference names where a secret is, it is not one
    forms = {raw, quote(raw, safe=""), quote_plus(raw)}
    if "://" in raw:
        try:
            password = urlsplit(raw).password
        except ValueError:
            password = None
        if password:
            forms |= {password, unquote(password)}
    global _known_sorted
    with _lock:
        _known.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)
        # longest first, so a secret that contains another is masked whole
        _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def register_secrets_from(obj: Any) -> None:
    """Register every ``SecretStr`` found in a settings object (pydantic models, dicts, lists)."""
    if hasattr(obj, "get_secret_value"):
        register_secret(obj)
    elif hasattr(obj, "model_fields") and not isinstance(obj, type):
        for name in type(obj).model_fields:
            register_secrets_from(getattr(obj, name, None))
    elif isinstance(obj, Mapping):
        for v in obj.values():
            register_secrets_from(v)
    elif isinstance(obj, list | tuple | set | frozenset):
        for v in obj:
            register_secrets_from(v)


def register_secrets_from_env(environ: Mapping[str, str] | None = None) -> None:
    """Register the project's secrets as given in the environment (``BTCMETA_*``).

    A belt to ``Settings.resolved``: a tool that logs before (or without) resolving its settings
    still masks a key, a token or a database password it was started with.
    """
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.upper().startswith("BTCMETA_") or not value:
            continue
        if "://" in value:
            register_secret(value) if _SECRET_KEY.search(name) else _register_url_password(value)
        elif name.upper().endswith("_TOKENS"):
            for entry in _json_list(value):
                register_secret(entry)
                register_secret(entry.split(":", 1)[-1])
        elif _SECRET_KEY.search(name):
            register_secret(value)


def _register_url_password(url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register_secret(password)
        register_secret(unquote(password))


def _json_list(value: str) -> Iterable[str]:
    try:
        parsed = jsonlib.loads(value)
    except ValueError:
        return [value]
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def known_secret_count() -> int:
    """How many value forms are registered (for tests and a start-up log line; never the values)."""
    return len(_known)


# --------------------------------------------------------------------------------------- scrubbing


def _mask_pair(match: re.Match[str]) -> str:
    if match.group("value") == REDACTED:
        return match.group(0)
    head = match.group("key") + match.group("sep") + match.group("quote")
    return f"{head}{match.group('scheme') or ''}{REDACTED}"


def redact_known(text: str) -> str:
    """Mask the registered secret values only (keeps a rendered JSON line valid JSON)."""
    for secret in _known_sorted:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_text(text: str) -> str:
    """Mask known secret values, secret ``key: value`` pairs and URL passwords in free text."""
    text = redact_known(text)
    text = _SECRET_PAIR.sub(_mask_pair, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(r"\1***\3", text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value("", v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask values whose key looks secret, and scrub every string value."""
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


class _RedactingRenderer:
    """Wraps the final renderer: a last pass for registered secret values over the whole line.

    Only known values here: the pattern pass already ran on every value (tracebacks included)
    and would turn ``"token_count": 3`` into invalid JSON if it ran over the rendered line.
    """

    def __init__(self, renderer: Callable[..., Any]) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        rendered = self._renderer(logger, method, event_dict)
        return redact_known(rendered) if isinstance(rendered, str) else rendered


_PLAIN = (int, float, bool, type(None))


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, _PLAIN):
        return arg  # keeps %d / %f working; numbers are not the secrets we hold
    text = str(arg)
    clean = redact_text(text)
    return arg if clean == text else clean


class RedactingFilter(logging.Filter):
    """A stdlib filter that scrubs a record in place (message, arguments, traceback) and keeps it.

    Arguments are scrubbed one by one rather than pre-formatting the message, because some
    formatters (uvicorn's access log) read ``record.args`` themselves.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_btcmeta_redacted", False):
            return True
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        elif record.msg is not None and not isinstance(record.msg, _PLAIN):
            record.msg = _redact_arg(record.msg)
        if isinstance(record.args, Mapping):
            record.args = {
                k: (REDACTED if _SECRET_KEY.search(str(k)) else _redact_arg(v))
                for k, v in record.args.items()
            }
        elif record.args:
            record.args = tuple(_redact_arg(a) for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as it would
            message = None
        if message is not None and redact_text(message) != message:
            # a secret assembled across msg and args: give up the split, keep the scrubbed text
            record.msg, record.args = redact_text(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        setattr(record, "_btcmeta_redacted", True)  # noqa: B010 - LogRecord has no such field
        return True


_FILTER = RedactingFilter()


def install_stdlib_redaction() -> None:
    """Scrub every stdlib log record of this process (idempotent).

    A filter on the root logger alone would miss records that propagate from child loggers (the
    logging module consults only the handlers' filters for those) and loggers with handlers of
    their own; the record factory sees every record, whichever logger or handler it goes to.
    """
    root = logging.getLogger()
    if _FILTER not in root.filters:
        root.addFilter(_FILTER)
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    current = logging.getLogRecordFactory()
    if getattr(current, "_btcmeta_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _FILTER.filter(record)
        return record

    factory._btcmeta_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> structlog.stdlib.BoundLogger:
    """Configure structlog + stdlib logging once per process and return the service's logger."""
    register_secrets_from_env()
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=getattr(logging, level.upper()))
    install_stdlib_redaction()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_secrets,  # after the traceback is text, so it is scrubbed like any value
            _RedactingRenderer(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # Resolve sys.stderr at each use, not at configure time: test runners and daemonizing
        # wrappers swap it, and a logger holding a closed stream would crash the service.
        logger_factory=lambda *_args: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(service)
    return logger


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
