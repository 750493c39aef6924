"""FastAPI dependencies: who is calling (bearer token -> role), a DB session, the namespace.

Auth is attached where routers are included (see ``app.py``), so a new endpoint in a router is
protected without anyone remembering to add a decorator.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from bridge.settings import Role
from bridge.state import BridgeState
from common.db.session import session_scope

_bearer = HTTPBearer(auto_error=False, description="A viewer or operator token of this bridge.")
NAMESPACE_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


@dataclass(frozen=True)
class Principal:
    """The caller, as recorded in the audit log (token name, never the token)."""

    name: str
    role: Role


def get_state(request: Request) -> BridgeState:
    return request.app.state.bridge  # type: ignore[no-any-return]


State = Annotated[BridgeState, Depends(get_state)]


def current_principal(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Resolve the bearer token; 401 when missing or unknown.

    Every configured token is compared (constant-time each, no early exit), so response timing
    does not tell which prefix or which token was close.
    """
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"}
        )
    offered = credentials.credentials.encode()
    found = None
    for token in state.tokens:
        if hmac.compare_digest(offered, token.secret.get_secret_value().encode()) and found is None:
            found = token
    if found is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"}
        )
    return Principal(name=found.name, role=found.role)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_viewer(principal: CurrentPrincipal) -> Principal:
    """Any valid token may read (operators included)."""
    return principal


def require_operator(principal: CurrentPrincipal) -> Principal:
    """Control actions: operators only; a valid viewer token gets 403, not 401."""
    if principal.role is not Role.OPERATOR:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "operator role required")
    return principal


def db_session(state: State) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns, rolled back if it raises."""
    with session_scope(state.engine) as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]


def namespace(
    state: State,
    namespace: Annotated[
        str | None,
        Query(
            pattern=NAMESPACE_PATTERN,
            description="Rows of which run to show: 'live' or a replay's namespace. "
            "Defaults to the bridge's configured namespace.",
        ),
    ] = None,
) -> str:
    return namespace or state.bridge.default_namespace


Namespace = Annotated[str, Depends(namespace)]
