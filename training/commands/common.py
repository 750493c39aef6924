"""Options and helpers shared by the ``python -m training`` command modules (one definition each)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine
    from sqlalchemy.exc import SQLAlchemyError

    from training.results import ResultsDB
    from training.signals import SignalArrays


DataOpt = Annotated[
    str, typer.Option("--data", help="candle CSV (date,open,high,low,close,volume) or 'bundled'")
]


AlgosOpt = Annotated[
    str,
    typer.Option(
        "--algos",
        help="comma-separated agents to train (ppo, a2c, dqn, sac, td3), or 'none' (baselines only)",
    ),
]


RewardOpt = Annotated[
    str,
    typer.Option(
        "--reward",
        help="training reward: pnl (equity change net of costs) or dsr (differential Sharpe "
        "ratio); every candidate is still chosen and scored on the same ledger metrics",
    ),
]


ResultsOpt = Annotated[
    str | None,
    typer.Option(
        "--results-db",
        help="results database URL (default: BTCMETA_TRAINING__RESULTS_DATABASE_URL, a local SQLite file)",
    ),
]


ArtifactsOpt = Annotated[
    Path | None,
    typer.Option(
        "--artifacts", help="folder for model files and curves (default: BTCMETA_TRAINING__ARTIFACTS_DIR)"
    ),
]


LiveOpt = Annotated[
    str | None, typer.Option("--database-url", help="live database URL (default: BTCMETA_DATABASE_URL)")
]


def _load(data: str, exogenous: Path | None = None) -> tuple[pd.DataFrame, SignalArrays]:
    from training.data import InputError, load_candles
    from training.signals import compute_signals, training_exogenous

    try:
        candles = load_candles(data)
    except (InputError, OSError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from None
    try:
        return candles, compute_signals(candles, exogenous=training_exogenous(directory=exogenous))
    except (OSError, ValueError) as exc:  # an unreadable/mismatching series file, a bad registry entry
        raise typer.BadParameter(str(exc)) from None


def _position(index: pd.DatetimeIndex, when: str | None, default: int, hint: str) -> int:
    import pandas as pd

    if when is None:
        return default
    try:
        ts = pd.Timestamp(datetime.fromisoformat(when))
    except ValueError:
        raise typer.BadParameter(f"not an ISO date: {when!r}", param_hint=hint) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(index.searchsorted(ts))


def _reward(text: str) -> str:
    from training.env import REWARDS

    if text not in REWARDS:
        raise typer.BadParameter(f"{text!r}: choose from {', '.join(REWARDS)}", param_hint="--reward")
    return text


def _algos(text: str) -> tuple[str, ...]:
    from training.rl import SUPPORTED

    names = tuple(dict.fromkeys(a.strip().lower() for a in text.split(",") if a.strip()))
    if names in ((), ("none",)):
        return ()
    unknown = [a for a in names if a not in SUPPORTED]
    if unknown:
        raise typer.BadParameter(
            f"unknown agent(s) {', '.join(unknown)}; choose from {', '.join(SUPPORTED)}", param_hint="--algos"
        )
    return names


def _results(url: str | None, artifacts: Path | None = None) -> ResultsDB:
    from sqlalchemy.exc import SQLAlchemyError

    from training.results import ResultsDB

    try:
        return ResultsDB.open(url, artifacts)
    except SQLAlchemyError as exc:
        raise typer.BadParameter(
            f"cannot open the results database: {exc.__class__.__name__}: {str(exc).splitlines()[0]}",
            param_hint="--results-db",
        ) from None


def _db_error(exc: SQLAlchemyError) -> str:
    """The first line of a driver error (no SQL, no parameters), for a usage message."""
    return f"live database: {exc.__class__.__name__}: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"


def _live_engine(url: str | None) -> Engine:
    from common.db.session import make_engine
    from config import load_settings

    return make_engine(url or load_settings().database_url.get_secret_value())
