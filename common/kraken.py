"""Kraken Futures facts that more than one service needs (the executor trades there, the producers
read its funding and open interest, training downloads its history), kept free of CCXT imports."""

from __future__ import annotations

__all__ = ["api_urls"]


def api_urls(base_url: str) -> dict[str, str]:
    """Every API family CCXT's krakenfutures signs against, re-rooted at ``base_url``.

    Tests and staging point the real CCXT client at a local stand-in this way; CCXT keeps one URL
    per family, so all of them must move together or a call would leave for the real venue.
    """
    root = base_url.rstrip("/")
    return {
        "public": f"{root}/derivatives/api/",
        "private": f"{root}/derivatives/api/",
        "charts": f"{root}/api/charts/",
        "history": f"{root}/api/history/",
        "feeschedules": f"{root}/api/feeschedules/",
    }
