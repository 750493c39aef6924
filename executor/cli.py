"""``python -m executor``: run the executor and operate its switches.

Switch commands write ``risk_state`` and an ``audit_log`` row in one transaction, naming who did
it and why: a kill switch nobody can explain later is an incident of its own. ``kill-switch`` also
publishes a FLAT intent so the (single, serialized) executor flattens now rather than at the next
policy tick; the operator never trades around the executor.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

import typer

from common.cli import make_app

if TYPE_CHECKING:
    from executor.clock import Clock

# Start-up imports only typer: the book, the venue clients (ccxt), Kafka and SQLAlchemy are
# imported by the commands that use them, so `--help` and a mistyped option answer at once.

app = make_app("Executor: risk-checked orders from intents.")


def _clock() -> Clock:
    """The clock operator commands act on: the wall clock (an operator acts now), read in this one
    place and handed on, like the service's (executor/clock.py)."""
    from executor.clock import SystemClock

    return SystemClock()


def _ns() -> tuple[str, str]:
    from config import load_settings
    from executor.runner import namespace_for

    settings = load_settings()
    return namespace_for(settings), settings.database_url.get_secret_value()


@app.command("run")
def run_cmd(
    max_messages: int = typer.Option(None, help="Stop after this many intents (tests, smoke runs)."),
    idle_timeout: float = typer.Option(None, help="Stop after this many idle seconds."),
) -> None:
    """Consume orders.intents one at a time until SIGTERM."""
    from common import health
    from common.logging import configure_logging
    from common.process import freeze_startup_heap
    from common.shutdown import GracefulShutdown
    from config import load_settings
    from executor.runner import SERVICE, run

    settings = load_settings().resolved()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    health.start(settings)  # metrics + /healthz/live, /healthz/ready (Postgres, Kafka)
    freeze_startup_heap()
    run(settings, max_messages=max_messages, idle_timeout=idle_timeout, shutdown=GracefulShutdown().install())


@app.command()
def status() -> None:
    """Print position, P&L, limits and switches of this namespace."""
    from common.db.models import PnlDaily
    from common.db.session import make_engine, session_scope
    from config import load_settings
    from executor import book

    settings = load_settings()
    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        h = book.load_holding(s, ns, settings.symbol)
        state = book.load_risk_state(s, ns)
        today = _clock().now().date()
        pnl = s.get(PnlDaily, (ns, today))
    typer.echo(f"namespace      {ns}   exchange {settings.exchange.mode.value}")
    typer.echo(f"position       {h.quantity:g} BTC @ {h.avg_price or 0:.2f}   realized {h.realized:.2f} USD")
    if pnl is not None:
        typer.echo(
            f"today          realized {pnl.realized:.2f} unrealized {pnl.unrealized:.2f} "
            f"fees {pnl.fees:.2f} funding {pnl.funding:.2f} equity {pnl.equity:.2f}"
        )
    r = settings.risk
    typer.echo(
        f"limits         max_position {r.max_position_btc:g} BTC, max_order {r.max_order_btc:g} BTC, "
        f"daily_loss_cap {r.daily_loss_cap_usd:g} USD, {r.max_orders_per_hour}/h, "
        f"max_intent_age {r.max_intent_age_s:g}s"
    )
    typer.echo(f"kill switch    {'ENGAGED: ' + (state.kill_reason or '') if state.kill_switch else 'off'}")
    typer.echo(f"paused         {state.trading_paused}   halted until {state.halted_until or '-'}")


@app.command("kill-switch")
def kill_switch(
    actor: str = typer.Option(..., help="Who engages it (name or on-call handle)."),
    reason: str = typer.Option(..., help="Why (kept in audit_log)."),
    flatten: bool = typer.Option(True, help="Publish a FLAT intent so the executor flattens now."),
    wait_s: float = typer.Option(
        0.0, "--wait-s", help="Wait for the executor's outcome of the FLAT intent (exit 1 if not flat)."
    ),
) -> None:
    """Engage the kill switch: request a flatten, then refuse every intent until `resume`.

    This command only sets the switch and PUBLISHES a FLAT intent; the executor does the
    flattening (even while trading is paused), and its outcome is what counts: `--wait-s` waits
    for it and prints it, otherwise check `status`.
    """
    from common import control
    from common.db.session import make_engine, session_scope
    from common.kafka.producer import EventProducer
    from common.kafka.topics import INTENTS
    from config import load_settings

    settings = load_settings()
    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        control.engage_kill_switch(s, ns, actor=actor, role="operator", reason=reason)
    typer.echo(f"kill switch engaged for {ns} by {actor}: {reason}")
    if flatten:
        clock = _clock()
        intent = control.flatten_intent(settings.symbol, actor, reason, clock.now())
        producer = EventProducer(settings, "executor-cli")
        producer.send(settings.topic(INTENTS), intent, key=intent.intent_id)
        producer.flush()
        typer.echo(f"flatten REQUESTED (not executed yet): FLAT intent {intent.intent_id} published")
        if wait_s > 0:
            _await_flatten(url, ns, settings.symbol, intent.intent_id, wait_s, clock)


def _await_flatten(url: str, ns: str, symbol: str, intent_id: str, wait_s: float, clock: Clock) -> None:
    """Print the executor's outcome for the FLAT intent; exit 1 unless the book ends flat."""
    from common.db.models import Intent
    from common.db.session import make_engine, session_scope
    from executor import book

    engine = make_engine(url)
    deadline = clock.now() + timedelta(seconds=wait_s)
    while True:
        with session_scope(engine) as s:
            row = s.get(Intent, (ns, intent_id))
            position = book.load_holding(s, ns, symbol).quantity
        if row is not None:
            typer.echo(f"executor outcome: {row.status}: {row.reason}   position {position:g} BTC")
            raise typer.Exit(0 if abs(position) < 1e-9 else 1)
        if clock.now() >= deadline:
            typer.echo(f"no executor outcome after {wait_s:g}s: position {position:g} BTC, NOT known flat")
            raise typer.Exit(1)
        clock.sleep(0.5)


@app.command()
def resume(
    actor: str = typer.Option(..., help="Who resumes trading."),
    reason: str = typer.Option(..., help="Why it is safe again (kept in audit_log)."),
) -> None:
    """Release the kill switch and un-pause (a daily-loss halt still runs to UTC midnight)."""
    from common import control
    from common.db.session import make_engine, session_scope

    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        control.release_kill_switch(
            s, ns, actor=actor, role="operator", reason=reason, action="resume", trading_paused=False
        )
    typer.echo(f"trading resumed for {ns} by {actor}: {reason}")


@app.command()
def pause(
    actor: str = typer.Option(..., help="Who pauses trading."),
    reason: str = typer.Option(..., help="Why (kept in audit_log)."),
) -> None:
    """Refuse every intent (without flattening) until `resume`."""
    from common.db.session import make_engine, session_scope
    from executor import book

    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        book.set_risk_state(s, ns, actor, "pause", reason, trading_paused=True)
    typer.echo(f"trading paused for {ns} by {actor}: {reason}")


@app.command("reconcile")
def reconcile_cmd() -> None:
    """Compare the venue's open orders, fills and position with the book; exit 1 if they disagree."""
    from config import load_settings
    from executor.runner import build_executor, startup_reconcile

    rec = startup_reconcile(build_executor(load_settings().resolved()))
    typer.echo(rec.describe())
    raise typer.Exit(0 if rec.ok else 1)


@app.command()
def adopt(
    reason: str = typer.Option(..., help="Why the venue's state is the truth (kept in audit_log)."),
    actor: str = typer.Option(
        os.environ.get("USER") or "operator", help="Who adopts (name or on-call handle)."
    ),
    cancel_foreign_orders: bool = typer.Option(
        False, help="Cancel working orders we did not place first (otherwise adopt refuses)."
    ),
) -> None:
    """Book the venue's fills and position as the truth, after a halt the venue's fills did not explain.

    Our own late fills are booked as usual; fills we cannot attribute are booked under an
    ``adopt|<time>`` intent, and any position the fill history does not reach is one adjustment
    fill at the mark. Nothing is traded. Logged (``reconcile_adopted``) and audited (``adopt``).
    """
    from common.db.session import session_scope
    from common.logging import configure_logging
    from config import load_settings
    from executor import repair
    from executor.reconcile import max_legs
    from executor.runner import SERVICE, build_executor

    settings = load_settings().resolved()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    executor = build_executor(settings)
    try:
        with session_scope(executor.engine) as s:
            done = repair.adopt(
                s,
                executor.exchange,
                executor.namespace,
                executor.symbol,
                actor=actor,
                reason=reason,
                clock=_clock(),
                legs=max_legs(settings.risk.max_position_btc, settings.risk.max_order_btc),
                cancel_foreign_orders=cancel_foreign_orders,
            )
    except repair.AdoptRefused as exc:
        typer.echo(f"adopt refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"adopted for {executor.namespace} by {actor}: book {done.book_before:g} -> venue "
        f"{done.venue_position:g} BTC ({done.fills_booked} fill(s), adjustment {done.adjustment:g} BTC)"
    )
