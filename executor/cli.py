"""``python -m executor``: run the executor and operate its switches.

Switch commands write ``risk_state`` and an ``audit_log`` row in one transaction, naming who did
it and why: a kill switch nobody can explain later is an incident of its own. ``kill-switch`` also
publishes a FLAT intent so the (single, serialized) executor flattens now rather than at the next
policy tick; the operator never trades around the executor.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from common.db.models import PnlDaily
from common.db.session import make_engine, session_scope
from common.events import IntentAction, OrderIntent
from common.ids import make_tick_id
from common.kafka.producer import EventProducer
from common.kafka.topics import INTENTS
from common.logging import configure_logging
from common.metrics import start_metrics_server
from common.shutdown import GracefulShutdown
from config import load_settings
from executor import book
from executor.runner import SERVICE, ExecutorOptions, build_executor, namespace_for, run, startup_reconcile

app = typer.Typer(
    help="Executor: risk-checked orders from intents.", no_args_is_help=True, add_completion=False
)
OPERATOR_MODEL = "operator"


def _ns() -> tuple[str, str]:
    settings = load_settings()
    return namespace_for(settings, ExecutorOptions()), settings.database_url.get_secret_value()


@app.command("run")
def run_cmd(
    max_messages: int = typer.Option(None, help="Stop after this many intents (tests, smoke runs)."),
    idle_timeout: float = typer.Option(None, help="Stop after this many idle seconds."),
) -> None:
    """Consume orders.intents one at a time until SIGTERM."""
    settings = load_settings().resolved()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    start_metrics_server(settings.metrics_port)
    run(settings, max_messages=max_messages, idle_timeout=idle_timeout, shutdown=GracefulShutdown().install())


@app.command()
def status() -> None:
    """Print position, P&L, limits and switches of this namespace."""
    settings = load_settings()
    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        h = book.load_holding(s, ns, settings.symbol)
        state = book.load_risk_state(s, ns)
        today = datetime.now(UTC).date()
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
) -> None:
    """Engage the kill switch: flatten, then refuse every intent until `resume`."""
    settings = load_settings()
    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        book.set_risk_state(s, ns, actor, "kill_switch", reason, kill_switch=True, kill_reason=reason)
    typer.echo(f"kill switch engaged for {ns} by {actor}: {reason}")
    if flatten:
        now = datetime.now(UTC)
        intent = OrderIntent.create(
            tick_id=make_tick_id(settings.symbol, now),
            model_id=OPERATOR_MODEL,
            symbol=settings.symbol,
            action=IntentAction.FLAT,
            current_exposure=0.0,
            target_exposure=0.0,
            created_at=now,
            reason=f"kill switch by {actor}: {reason}",
        )
        producer = EventProducer(settings, "executor-cli")
        producer.send(settings.topic(INTENTS), intent, key=intent.intent_id)
        producer.flush()
        typer.echo(f"flatten intent published: {intent.intent_id}")


@app.command()
def resume(
    actor: str = typer.Option(..., help="Who resumes trading."),
    reason: str = typer.Option(..., help="Why it is safe again (kept in audit_log)."),
) -> None:
    """Release the kill switch and un-pause (a daily-loss halt still runs to UTC midnight)."""
    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        book.set_risk_state(
            s, ns, actor, "resume", reason, kill_switch=False, kill_reason=None, trading_paused=False
        )
    typer.echo(f"trading resumed for {ns} by {actor}: {reason}")


@app.command()
def pause(
    actor: str = typer.Option(..., help="Who pauses trading."),
    reason: str = typer.Option(..., help="Why (kept in audit_log)."),
) -> None:
    """Refuse every intent (without flattening) until `resume`."""
    ns, url = _ns()
    with session_scope(make_engine(url)) as s:
        book.set_risk_state(s, ns, actor, "pause", reason, trading_paused=True)
    typer.echo(f"trading paused for {ns} by {actor}: {reason}")


@app.command("reconcile")
def reconcile_cmd() -> None:
    """Compare the venue's open orders, fills and position with the book; exit 1 if they disagree."""
    rec = startup_reconcile(build_executor(load_settings().resolved()))
    typer.echo(rec.describe())
    raise typer.Exit(0 if rec.ok else 1)
