"""Settings of the bridge alone (port, TLS, API tokens, rate limits, stream buffer), apart from ``config.py``.

Tokens are configured as ``name:secret`` entries, one list per role, because the audit log must say
*who* pressed the kill switch, not merely that some operator token did. A secret part may be a
1Password reference (``ops:op://vault/item/field``), resolved once at start like every other secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.db.base import LIVE_NAMESPACE
from common.logging import register_secret
from config import resolve_secret

BRIDGE_ENV_PREFIX = "BTCMETA_BRIDGE_"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class ApiToken:
    """One configured token: ``name`` goes into the audit log, ``secret`` is only ever compared."""

    name: str
    role: Role
    secret: SecretStr

    def __repr__(self) -> str:  # never print the secret, even by accident in a traceback
        return f"ApiToken(name={self.name!r}, role={self.role.value!r})"


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=BRIDGE_ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: JSON lists of ``name:secret`` entries (``'["alice:..."]'``); empty lists mean nobody gets in.
    viewer_tokens: list[SecretStr] = Field(default_factory=list)
    operator_tokens: list[SecretStr] = Field(default_factory=list)
    #: Namespace shown when a request names none (a demo bridge may default to a replay's namespace).
    default_namespace: str = LIVE_NAMESPACE
    #: Events kept for reconnecting SSE clients (Last-Event-ID); older ones are gone for good.
    stream_buffer: int = Field(default=2_000, ge=10, le=1_000_000)
    #: Whether to run the Kafka consumer feeding /api/stream (off for REST-only tests and tools).
    stream_enabled: bool = True
    #: Seconds between SSE keep-alive comments, so proxies do not cut idle streams.
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    #: Tripping the kill switch also publishes a FLAT intent (as `python -m executor kill-switch`
    #: does), so the executor flattens now instead of at the next tick's intent.
    flatten_on_trip: bool = True
    #: A service whose last heartbeat is older than this is reported as stale.
    heartbeat_stale_s: float = Field(default=120.0, gt=0)
    #: Control endpoints (kill switch, pause/resume, model select): each client gets a bucket of
    #: ``control_burst`` requests refilled at ``control_rate_per_min``; 0 switches limiting off.
    control_rate_per_min: float = Field(default=30.0, ge=0)
    control_burst: int = Field(default=10, ge=1, le=10_000)
    #: Serve HTTPS: PEM certificate (chain) and private key files; both or neither. Without them
    #: the bridge speaks plain HTTP, fit only behind a TLS-terminating ingress or on 127.0.0.1.
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    #: Password of an encrypted private key (may be a 1Password reference).
    tls_keyfile_password: SecretStr | None = None

    @field_validator("default_namespace")
    @classmethod
    def _namespace_shape(cls, value: str) -> str:
        if not value or len(value) > 64:
            raise ValueError("must be 1..64 characters")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> BridgeSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both (HTTPS) or neither")
        for path in (self.tls_certfile, self.tls_keyfile):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS file not found: {path}")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    def uvicorn_ssl_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.Config``/``uvicorn.run``: empty for plain HTTP.

        uvicorn's default context is TLS-server with Python's defaults (TLS 1.2 or newer).
        """
        if not self.tls:
            return {}
        password = resolve_secret(self.tls_keyfile_password, f"{BRIDGE_ENV_PREFIX}TLS_KEYFILE_PASSWORD")
        if password is not None:
            register_secret(password)
        return {
            "ssl_certfile": self.tls_certfile,
            "ssl_keyfile": self.tls_keyfile,
            "ssl_keyfile_password": password.get_secret_value() if password else None,
        }

    def api_tokens(self) -> list[ApiToken]:
        """Parse and resolve every configured token (1Password references included)."""
        tokens: list[ApiToken] = []
        for role, entries in ((Role.VIEWER, self.viewer_tokens), (Role.OPERATOR, self.operator_tokens)):
            for index, entry in enumerate(entries):
                tokens.append(parse_token(entry, role, index))
        names = [t.name for t in tokens]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"bridge token names must be unique, repeated: {duplicates}")
        return tokens


def parse_token(entry: SecretStr, role: Role, index: int) -> ApiToken:
    """``name:secret`` -> ApiToken; an entry without a name is called ``<role>-<index>``."""
    raw = entry.get_secret_value().strip()
    setting = f"{BRIDGE_ENV_PREFIX}{role.value.upper()}_TOKENS[{index}]"
    if raw.startswith("op://") or ":" not in raw:
        name, secret = f"{role.value}-{index}", raw
    else:
        name, secret = raw.split(":", 1)
    resolved = resolve_secret(SecretStr(secret), setting)
    if not name or resolved is None or len(resolved.get_secret_value()) < 8:
        raise ValueError(f"{setting}: expected 'name:secret' with a secret of at least 8 characters")
    register_secret(resolved)  # masked in every log line from now on
    return ApiToken(name=name, role=role, secret=resolved)
