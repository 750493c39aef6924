"""Per-client token buckets for the control endpoints (kill switch, pause/resume, model select).

Why: a control action writes the risk state and the audit log and may publish a FLAT intent; a
runaway script, a stuck GUI button or someone guessing operator tokens should not be able to
hammer them. Reads are not limited here (they are cheap and the GUI polls them).

A client is its address as the server sees it (uvicorn applies ``X-Forwarded-For`` only from
proxies it trusts, so a caller cannot pick a fresh identity per request), counted before auth so
bad tokens are throttled too. Each client has a bucket of ``burst`` tokens refilled at
``rate_per_min``; a request with no token left gets 429 and ``Retry-After`` (whole seconds until
one token is back). A small dependency-free implementation: the only rate-limiting library in
the lock comes with a test tool, not with the services.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by client key; thread-safe (sync endpoints run in a thread pool).

    At most ``max_clients`` buckets are kept (least recently used dropped first): a dropped
    client comes back with a full bucket, which costs at most one extra burst, never memory.
    """

    def __init__(
        self,
        rate_per_min: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_min <= 0 or burst < 1:
            raise ValueError("rate_per_min must be > 0 and burst >= 1")
        self._rate_per_s = rate_per_min / 60.0
        self._burst = float(burst)
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float | None:
        """Spend one token of ``client``: None when allowed, else seconds until one is back."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(client, None) or _Bucket(self._burst, now)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate_per_s)
            bucket.updated = now
            self._buckets[client] = bucket  # most recently used last
            while len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self._rate_per_s


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def limit_control(request: Request) -> None:
    """FastAPI dependency for the control router: 429 + Retry-After when the client's bucket is empty.

    The buckets live on ``app.state.control_limiter`` (None: limiting switched off by settings).
    """
    buckets: TokenBuckets | None = getattr(request.app.state, "control_limiter", None)
    if buckets is None:
        return
    wait = buckets.take(client_key(request))
    if wait is not None:
        retry_after = max(1, math.ceil(wait))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many control requests from this client; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
