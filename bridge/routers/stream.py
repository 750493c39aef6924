"""Server-sent events: live ticks, recommendations, intents and executions from Kafka.

A reconnecting client sends ``Last-Event-ID`` (header, or ``last_event_id`` for clients that
cannot set headers) and first receives what it missed from the bridge's buffer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from bridge.dependencies import State
from bridge.stream import EVENT_TYPES, EventHub, parse_last_event_id

router = APIRouter(tags=["stream"])

_TYPES_PATTERN = rf"^({'|'.join(EVENT_TYPES)})(,({'|'.join(EVENT_TYPES)}))*$"


def _reset_frame(hub: EventHub) -> str:
    return f'event: reset\ndata: {{"last_event_id":"{hub.instance}-{hub.last_id}"}}\n\n'


async def _frames(
    hub: EventHub, cursor: int, wanted: set[str], follow: bool, keepalive: float
) -> AsyncIterator[str]:
    flag = hub.register()
    try:
        yield "retry: 3000\n\n"
        while True:
            flag.clear()  # before reading, so a publish racing with the read still wakes us
            events, reset = hub.since(cursor)
            if reset:
                yield _reset_frame(hub)
            for event in events:
                cursor = event.id
                if event.type in wanted:
                    yield event.to_sse(hub.instance)
            if not follow or hub.closed:
                return
            if events:
                continue
            try:
                await asyncio.wait_for(flag.wait(), timeout=keepalive)
            except TimeoutError:
                yield ": keep-alive\n\n"
    finally:
        hub.unregister(flag)


@router.get(
    "/stream",
    summary="Live events as text/event-stream (event types: tick, recommendation, intent, execution)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    state: State,
    types: Annotated[
        str | None, Query(pattern=_TYPES_PATTERN, description="Comma-separated event types; default all.")
    ] = None,
    follow: Annotated[bool, Query(description="false: send the missed events and close.")] = True,
    last_event_id: Annotated[str | None, Query(max_length=40, description="Same as Last-Event-ID.")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=40)] = None,
) -> StreamingResponse:
    wanted = set(types.split(",")) if types else set(EVENT_TYPES)
    since = parse_last_event_id([last_event_id_header, last_event_id], state.hub.instance)
    # A new client's starting point is fixed here, before the response headers go out: read in the
    # generator, it would skip an event published between the client seeing the headers and the
    # body's first frame.
    cursor = state.hub.last_id if since is None else since
    frames = _frames(state.hub, cursor, wanted, follow, state.bridge.stream_keepalive_s)
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
