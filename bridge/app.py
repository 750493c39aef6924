"""Assemble the bridge: routers per concern, auth attached at inclusion, lifespan owning resources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from bridge.dependencies import require_operator, require_viewer
from bridge.ratelimit import TokenBuckets, limit_control
from bridge.routers import control, market, models, status, stream, trading
from bridge.schemas import ErrorOut
from bridge.settings import api_tokens
from bridge.state import BridgeState
from bridge.stream import EventHub, KafkaFeed
from common.db.session import make_engine
from common.health import HEALTH
from config import BridgeSettings, Settings, load_settings

API_PREFIX = "/api"
API_VERSION = "1.0.0"


async def _beat_forever(every_s: float = 1.0) -> None:
    """Beat ``common.health`` from the event loop: a blocked loop stops the beats (/healthz/live)."""
    while True:
        HEALTH.beat()
        await asyncio.sleep(every_s)


def create_app(
    settings: Settings | None = None,
    bridge: BridgeSettings | None = None,
) -> FastAPI:
    """Build the app; settings are read (and tokens resolved) here so a bad config fails at start."""
    settings = settings or load_settings().resolved()
    bridge = bridge or settings.bridge
    tokens = api_tokens(bridge)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(
            settings.database_url.get_secret_value(), pool_size=5, max_overflow=5, statement_timeout_ms=30_000
        )
        hub = EventHub(bridge.stream_buffer)
        feed = KafkaFeed(settings, hub) if bridge.stream_enabled else None
        app.state.bridge = BridgeState(settings, bridge, engine, tokens, hub)
        app.state.feed = feed
        if feed is not None:
            feed.start()
        beating = asyncio.create_task(_beat_forever())  # liveness: the event loop turns
        try:
            yield
        finally:
            beating.cancel()
            hub.close()
            if app.state.bridge._producer is not None:
                app.state.bridge._producer.close()
            if feed is not None:
                feed.stop()
            engine.dispose()

    app = FastAPI(
        title="btc-meta bridge",
        version=API_VERSION,
        summary="Read-only view of the trading pipeline plus audited operator controls, and a live SSE feed.",
        lifespan=lifespan,
    )
    denied: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorOut, "description": "Missing or bad token"}
    }
    viewer = [Depends(require_viewer)]
    for router in (status.router, trading.router, market.router, models.router, stream.router):
        app.include_router(router, prefix=API_PREFIX, dependencies=viewer, responses=denied)
    # Throttled before auth, so a token guesser is slowed down as much as a runaway script.
    rate, burst = bridge.control_rate_per_min, bridge.control_burst
    app.state.control_limiter = TokenBuckets(rate, burst) if rate > 0 else None
    app.include_router(
        control.router,
        prefix=API_PREFIX,
        dependencies=[Depends(limit_control), Depends(require_operator)],
        responses=denied
        | {
            400: {"model": ErrorOut, "description": "Body is not valid JSON"},
            403: {"model": ErrorOut, "description": "Operator role required"},
            429: {"model": ErrorOut, "description": "Too many control requests (see Retry-After)"},
        },
    )

    @app.get("/health", tags=["status"], summary="Liveness probe (no auth, no database)")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, _exc: OperationalError) -> JSONResponse:
        # Connection-level failures are an outage, not a bug: 503 lets clients say "database down".
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    return app
