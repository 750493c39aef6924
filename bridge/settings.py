"""The bridge's API tokens and TLS options, built from ``settings.bridge`` (``config.BridgeSettings``).

The values live in the one settings tree (``BTCMETA_BRIDGE__*``); this module turns them into what
the bridge runs with. Tokens are configured as ``name:secret`` entries, one list per role, because
the audit log must say *who* pressed the kill switch, not merely that some operator token did. A
secret part may be a 1Password reference (``ops:op://vault/item/field``), resolved once at start
like every other secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import SecretStr

from common.logging import register_secret
from config import BridgeSettings, new_env_name, resolve_secret


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


def uvicorn_ssl_options(bridge: BridgeSettings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run``: empty for plain HTTP.

    uvicorn's default context is TLS-server with Python's defaults (TLS 1.2 or newer).
    """
    if not bridge.tls:
        return {}
    password = resolve_secret(bridge.tls_keyfile_password, new_env_name("bridge", "tls_keyfile_password"))
    if password is not None:
        register_secret(password)
    return {
        "ssl_certfile": bridge.tls_certfile,
        "ssl_keyfile": bridge.tls_keyfile,
        "ssl_keyfile_password": password.get_secret_value() if password else None,
    }


def api_tokens(bridge: BridgeSettings) -> list[ApiToken]:
    """Parse and resolve every configured token (1Password references included)."""
    tokens: list[ApiToken] = []
    for role, entries in ((Role.VIEWER, bridge.viewer_tokens), (Role.OPERATOR, bridge.operator_tokens)):
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
    setting = f"{new_env_name('bridge', f'{role.value}_tokens')}[{index}]"
    if raw.startswith("op://") or ":" not in raw:
        name, secret = f"{role.value}-{index}", raw
    else:
        name, secret = raw.split(":", 1)
    resolved = resolve_secret(SecretStr(secret), setting)
    if not name or resolved is None or len(resolved.get_secret_value()) < 8:
        raise ValueError(f"{setting}: expected 'name:secret' with a secret of at least 8 characters")
    register_secret(resolved)  # masked in every log line from now on
    return ApiToken(name=name, role=role, secret=resolved)
