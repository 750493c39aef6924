"""Candles and features: ``download`` (CSV or CCXT) and ``features`` (normalized market features)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from training.commands.app import app
from training.commands.common import DataOpt, _load


@app.command()
def download(
    out: Annotated[Path, typer.Option("--out", help="CSV to write (date,open,high,low,close,volume)")],
    csv: Annotated[Path | None, typer.Option("--csv", help="import this CSV offline (validated)")] = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="CCXT exchange id, e.g. krakenfutures")
    ] = None,
    symbol: Annotated[str, typer.Option("--symbol")] = "BTC/USD:USD",
    since: Annotated[
        str | None, typer.Option("--since", help="ISO date (default: 365 days before --until)")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO date (default: now)")] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="exchange API root (a local stand-in); krakenfutures only"),
    ] = None,
) -> None:
    """Hourly candles into the project's CSV format: from a CSV file, or from an exchange through CCXT."""
    from common.dataset import read_ohlcv_csv
    from training.data import InputError

    if (csv is None) == (exchange is None):
        raise typer.BadParameter("give exactly one of --csv PATH or --exchange ID")
    if csv is not None:
        try:
            frame = read_ohlcv_csv(csv, strict=True)
        except (InputError, OSError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--csv") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.reset_index()[["date", "open", "high", "low", "close", "volume"]].to_csv(out, index=False)
    else:
        from common.ccxt_history import download_csv
        from common.kraken import api_urls

        assert exchange is not None
        stop = _utc(until, "--until") or datetime.now(UTC)
        start = _utc(since, "--since") or stop - timedelta(days=365)
        if start >= stop:
            raise typer.BadParameter("--since must be before --until", param_hint="--since")
        options: dict[str, object] = {}
        if base_url:
            if exchange != "krakenfutures":
                raise typer.BadParameter(
                    "--base-url is supported for krakenfutures only", param_hint="--base-url"
                )
            options["urls"] = {"api": api_urls(base_url)}
        try:
            download_csv(
                out, exchange=exchange, symbol=symbol, since=start, until=stop, client_options=options
            )
        except AttributeError:
            raise typer.BadParameter(f"unknown CCXT exchange {exchange!r}", param_hint="--exchange") from None
        try:
            frame = read_ohlcv_csv(out, strict=True)
        except InputError as exc:
            raise typer.BadParameter(
                f"the exchange returned unusable candles: {exc}", param_hint="--exchange"
            ) from None
    typer.echo(f"{len(frame)} bars {frame.index[0]} .. {frame.index[-1]} -> {out}")


def _utc(when: str | None, hint: str) -> datetime | None:
    if when is None:
        return None
    try:
        ts = datetime.fromisoformat(when)
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {when!r}", param_hint=hint) from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


@app.command()
def features(
    data: DataOpt = "bundled",
    out: Annotated[Path, typer.Option("--out", help="output .npz")] = Path("features.npz"),
    train_fraction: Annotated[float, typer.Option("--train-fraction", min=0.1, max=0.9)] = 0.6,
    vol_window: Annotated[int, typer.Option("--vol-window", min=2)] = 24,
) -> None:
    """Market features normalized with statistics fitted on the train window (first --train-fraction)."""
    import numpy as np

    from training.features import fit_stats, market_features
    from training.split import time_split

    candles, sig = _load(data)
    try:
        fold = time_split(
            len(candles),
            start=sig.warmup,
            train=train_fraction,
            validation=min(0.2, (1 - train_fraction) / 2),
        )
        stats = fit_stats(candles["close"].to_numpy(np.float64), fold.train, vol_window=vol_window)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    feats = market_features(candles["close"].to_numpy(np.float64), stats)
    arrays: dict[str, np.ndarray] = {
        "index": sig.index.asi8,
        "stats": np.array(json.dumps(asdict(stats))),
        "train": np.array([fold.train.start, fold.train.end]),
        **feats,
    }
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    typer.echo(
        f"{len(candles)} bars; fitted on train bars {fold.train.start}..{fold.train.end - 1} "
        f"(vol_scale {stats.vol_scale:.5f}); {', '.join(feats)} -> {out}"
    )
