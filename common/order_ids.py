"""Client order ids derived from intent ids, so a retried or re-delivered intent finds its orders.

Shape: a UUID (version 5, name-based) of ``<namespace>|<intent id>|<leg>``. Why a UUID: Kraken
Futures documents ``cliOrdId`` as a UUID-like string of limited length (it answers
``clientOrderIdTooLong`` beyond it), and intent ids (``BTC/USD:USD|2022-08-20T00:00Z|model``) are
neither short nor made of safe characters. Name-based UUIDs are deterministic, 36 characters,
and collision-free in practice; the namespace keeps a replay's ids apart from the live system's.

In ``common`` because the executor places orders under these ids and the replay backtest (ops)
matches fills back to intent legs with them: one derivation, imported by both.
"""

from __future__ import annotations

import uuid

#: Fixed root for our name-based ids; changing it would orphan every order placed before.
_ROOT = uuid.UUID("6d1f3c52-8a5e-4b7e-9f0c-2c1e7b9a4d10")
MAX_CLIENT_ID_LEN = 36


def client_order_id(namespace: str, intent_id: str, leg: int) -> str:
    """Deterministic client order id of leg ``leg`` (0-based) of an intent."""
    if leg < 0:
        raise ValueError(f"leg must be >= 0, got {leg}")
    if not intent_id:
        raise ValueError("intent_id must not be empty")
    return str(uuid.uuid5(_ROOT, f"{namespace}|{intent_id}|{leg}"))


def client_order_ids(namespace: str, intent_id: str, legs: int) -> list[str]:
    return [client_order_id(namespace, intent_id, i) for i in range(legs)]
