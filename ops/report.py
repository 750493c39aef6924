"""Report of a pipeline run (demo or topic replay): what was decided, traded and earned.

Everything is read back from Postgres rows the services wrote (decisions, recommendations,
orders, fills, funding) and the stored candles; nothing is recomputed from assumptions except
the comparison lines (buy-and-hold, each strategy alone), which are labelled as such and
ignore costs. PnL is in USD on the executor's position, whose maximum is
``BTCMETA_RISK__MAX_POSITION_BTC``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sqlalchemy import select

from common.db.models import Candle, Decision, Fill, FundingPayment, Order, Recommendation
from common.db.session import make_engine, session_scope
from common.registry import Registry
from config import load_settings
from strategy_consumers.runner import build_strategy

TARGET_SIGN = {"LONG": 1, "SHORT": -1, "FLAT": 0}


def _frames(url: str, ns: str, start: datetime, end: datetime) -> dict[str, pd.DataFrame]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        candles = pd.DataFrame(
            s.execute(
                select(Candle.open_time, Candle.close)
                .where(
                    Candle.timeframe == "1h",
                    Candle.open_time >= start - pd.Timedelta(hours=1),
                    Candle.open_time < end,
                )
                .order_by(Candle.open_time)
            ).all(),
            columns=["open_time", "close"],
        )
        decisions = pd.DataFrame(
            s.execute(
                select(
                    Decision.tick_id,
                    Decision.decided_at,
                    Decision.model_id,
                    Decision.action,
                    Decision.current_exposure,
                    Decision.target_exposure,
                    Decision.degraded,
                )
                .where(Decision.namespace == ns)
                .order_by(Decision.id)
            ).all(),
            columns=[
                "tick_id",
                "decided_at",
                "model_id",
                "action",
                "current_exposure",
                "target_exposure",
                "degraded",
            ],
        )
        fills = pd.DataFrame(
            s.execute(
                select(Fill.filled_at, Order.side, Fill.quantity, Fill.price, Fill.fee, Order.intent_id)
                .join(
                    Order,
                    (Order.namespace == Fill.namespace) & (Order.client_order_id == Fill.client_order_id),
                )
                .where(Fill.namespace == ns)
                .order_by(Fill.filled_at)
            ).all(),
            columns=["filled_at", "side", "quantity", "price", "fee", "intent_id"],
        )
        funding = pd.DataFrame(
            s.execute(
                select(FundingPayment.funding_time, FundingPayment.amount).where(
                    FundingPayment.namespace == f"paper:{ns}"
                )
            ).all(),
            columns=["funding_time", "amount"],
        )
        recs = pd.DataFrame(
            s.execute(
                select(
                    Recommendation.strategy,
                    Recommendation.bar_close_time,
                    Recommendation.target,
                    Recommendation.event,
                    Recommendation.reason,
                    Recommendation.attention,
                ).where(Recommendation.namespace == ns)
            ).all(),
            columns=["strategy", "bar_close_time", "target", "event", "reason", "attention"],
        )
    return {"candles": candles, "decisions": decisions, "fills": fills, "funding": funding, "recs": recs}


def _pnl_curve(closes: pd.Series, fills: pd.DataFrame, funding: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Marked-to-market PnL (USD) and position (BTC) at every hourly close, from the real fills."""
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["quantity"].to_numpy()
    # A fill at tick time T trades at the open of the bar opening at T; it is held from that bar on.
    when = pd.DatetimeIndex(fills["filled_at"]).floor("h")
    pos_delta = pd.Series(signed, index=when).groupby(level=0).sum()
    cash_delta = pd.Series(-signed * fills["price"].to_numpy() - fills["fee"].to_numpy(), index=when)
    cash_delta = cash_delta.groupby(level=0).sum()
    idx = closes.index
    position = pos_delta.reindex(idx, fill_value=0.0).cumsum()
    cash = cash_delta.reindex(idx, fill_value=0.0).cumsum()
    if not funding.empty:
        fund = pd.Series(
            funding["amount"].to_numpy(), index=pd.DatetimeIndex(funding["funding_time"]).floor("h")
        )
        cash = cash + fund.groupby(level=0).sum().reindex(idx, fill_value=0.0).cumsum()
    return cash + position * closes, position


def _drawdown(curve: pd.Series) -> float:
    return float((curve - curve.cummax()).min()) if len(curve) else 0.0


def write_report(url: str, ns: str, start: datetime, end: datetime, out: Path, registry: Registry) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    max_btc = settings.risk.max_position_btc
    f = _frames(url, ns, start, end)
    candles = f["candles"].set_index(pd.DatetimeIndex(f["candles"]["open_time"]))["close"]
    # Mark at each bar's close; index by the bar's open time.
    closes = candles[candles.index >= start - pd.Timedelta(hours=1)]
    pnl, position = _pnl_curve(closes, f["fills"], f["funding"])
    hold = max_btc * (closes - closes.iloc[0])

    lines = [
        "# Demo run: real BTC/USD hourly data through the pipeline (paper trading)",
        "",
        f"- namespace `{ns}`, window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC "
        f"({len(f['decisions'])} ticks decided)",
        f"- data: bundled Bitstamp hourly candles; execution: paper venue, taker fee "
        f"{settings.exchange.taker_fee:.2%}, slippage {settings.exchange.slippage_bps} bp, hourly funding",
        f"- policy: {', '.join(sorted(set(f['decisions']['model_id']))) or 'none'} "
        "(`fallback:majority_vote` = no trained model selected: plurality of the strategies' targets; "
        "ties stay flat)",
        f"- max position {max_btc} BTC; exposure step {settings.exposure_step}",
        "",
        "## Result",
        "",
        "| line | PnL (USD) | max drawdown (USD) |",
        "|---|---:|---:|",
        f"| pipeline (real fills, fees and funding) | {pnl.iloc[-1]:,.2f} | {_drawdown(pnl):,.2f} |",
        f"| buy and hold {max_btc} BTC (no costs, comparison) | {hold.iloc[-1]:,.2f} "
        f"| {_drawdown(hold):,.2f} |",
    ]
    strat_curves: dict[str, pd.Series] = {}
    recs = f["recs"]
    ret = closes.diff().fillna(0.0)
    for spec in registry.enabled:
        r = recs[recs["strategy"] == spec.name]
        if r.empty:
            continue
        tgt = pd.Series(
            r["target"].map(TARGET_SIGN).to_numpy(), index=pd.DatetimeIndex(r["bar_close_time"])
        ).sort_index()
        held = tgt.reindex(closes.index).shift(0).ffill().fillna(0.0)
        curve = (max_btc * held.shift(1).fillna(0.0) * ret).cumsum()
        strat_curves[spec.name] = curve
        lines.append(
            f"| {spec.name} alone ({max_btc} BTC, no costs, comparison) | {curve.iloc[-1]:,.2f} | "
            f"{_drawdown(curve):,.2f} |"
        )
    fills = f["fills"]
    lines += [
        "",
        f"- fills: {len(fills)}; fees paid: {fills['fee'].sum():,.2f} USD; funding: "
        f"{f['funding']['amount'].sum():,.2f} USD; time in market: {(position != 0).mean():.1%}",
        f"- degraded ticks: {int(f['decisions']['degraded'].sum())}",
        "",
    ]
    lines += _annotations_section(recs, registry)
    lines += _parity_section(recs, registry, url)

    fig, axes = plt.subplots(3, 1, figsize=(12, 10), sharex=True, gridspec_kw={"height_ratios": [2, 1, 2]})
    axes[0].plot(closes.index, closes.to_numpy(), color="#555", lw=0.8)
    for side, marker, colour in (("buy", "^", "#1a9850"), ("sell", "v", "#d73027")):
        sel = fills[fills["side"] == side]
        axes[0].scatter(
            pd.DatetimeIndex(sel["filled_at"]),
            sel["price"],
            marker=marker,
            color=colour,
            s=18,
            label=f"{side} fills",
            zorder=3,
        )
    axes[0].set_ylabel("BTC/USD")
    axes[0].legend(loc="upper left")
    axes[1].step(position.index, position.to_numpy(), where="post", color="#2c7bb6")
    axes[1].set_ylabel("position (BTC)")
    axes[2].plot(pnl.index, pnl.to_numpy(), lw=1.8, color="black", label="pipeline (fills, fees, funding)")
    axes[2].plot(hold.index, hold.to_numpy(), lw=1, ls="--", color="#999", label="buy and hold")
    for name, curve in strat_curves.items():
        axes[2].plot(curve.index, curve.to_numpy(), lw=0.8, alpha=0.7, label=f"{name} alone")
    axes[2].set_ylabel("PnL (USD)")
    axes[2].legend(loc="upper left", fontsize=8, ncol=2)
    fig.suptitle(f"Pipeline on real data, {start:%Y-%m-%d} .. {end:%Y-%m-%d} (namespace {ns})")
    fig.tight_layout()
    fig.savefig(out / "pnl.png", dpi=110)
    plt.close(fig)

    f["decisions"].to_csv(out / "decisions.csv", index=False)
    fills.to_csv(out / "fills.csv", index=False)
    lines += ["![PnL](pnl.png)", "", "Files: `decisions.csv`, `fills.csv`, service logs in `logs/`."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _annotations_section(recs: pd.DataFrame, registry: Registry) -> list[str]:
    """Per strategy, how often it had no opinion (a stored reason) and flagged a high-attention bar.

    Read from the stored v3 fields, so it shows what actually reached the meta consumer: a strategy
    whose inputs went stale says so here instead of looking like a run of FLATs.
    """
    lines = [
        "## Strategy annotations",
        "",
        "| strategy | recommendations | no opinion (with a reason) | most frequent reason "
        "| attention-flagged |",
        "|---|---:|---:|---|---:|",
    ]
    for spec in registry.enabled:
        r = recs[recs["strategy"] == spec.name]
        if r.empty:
            continue
        reasons = r["reason"].dropna()
        top = f"`{reasons.value_counts().index[0]}`".replace("|", "\\|") if len(reasons) else ""
        flagged = int(r["attention"].eq(True).sum())
        lines.append(f"| {spec.name} | {len(r)} | {len(reasons)} | {top} | {flagged} |")
    return [*lines, ""]


def _parity_section(recs: pd.DataFrame, registry: Registry, url: str) -> list[str]:
    """Recommendations that travelled through Kafka vs the same strategy run over the full history.

    A 4h/1d strategy runs over its own bars (resampled as the emitter does) and an exogenous one
    over the stored series the emitter attached (each strategy cuts them by publication time).
    """
    from common.dataset import load_bundled_candles, resample_candles
    from common.db.session import make_engine
    from common.exogenous.store import read_series

    history = load_bundled_candles()
    engine = make_engine(url)
    series: dict[str, pd.DataFrame] = {}
    lines = [
        "## Parity: live path vs full-history computation",
        "",
        "| strategy | recommendations | equal target and event |",
        "|---|---:|---:|",
    ]
    for spec in registry.enabled:
        r = recs[recs["strategy"] == spec.name]
        if r.empty:
            continue
        for name in spec.exogenous_inputs:
            if name not in series:
                series[name] = read_series(engine, name)
        exogenous = {name: series[name] for name in spec.exogenous_inputs}
        frame = resample_candles(history, spec.timeframe)
        strategy = build_strategy(spec)
        full = strategy.evaluate(frame, exogenous=exogenous) if exogenous else strategy.evaluate(frame)
        opens = pd.DatetimeIndex(r["bar_close_time"]) - pd.Timedelta(minutes=spec.timeframe_minutes)
        exp = full.loc[opens]
        same = (r["target"].map(TARGET_SIGN).to_numpy() == exp["target"].to_numpy()) & (
            r["event"].to_numpy() == exp["event"].to_numpy()
        )
        lines.append(f"| {spec.name} | {len(r)} | {int(same.sum())} |")
    engine.dispose()
    return [*lines, ""]
