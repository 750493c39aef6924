"""Wiring: settings -> engine, venue, clock, consumer loop. Kept apart so tests build the same thing.

Executor-only knobs are the ``executor`` group of the one settings tree (``settings.executor``,
``BTCMETA_EXECUTOR__*``); functions take them as ``options`` so a test can vary them alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from common.db.base import LIVE_NAMESPACE
from common.db.retry import with_db_retry
from common.db.session import make_engine
from common.events import ExecutionReport, OrderIntent
from common.kafka.consumer import ConsumerLoop, LoopStats, OnError, OnUnknownSchema
from common.kafka.producer import EventProducer
from common.kafka.topics import EXECUTIONS, INTENTS
from common.logging import get_logger
from common.shutdown import GracefulShutdown
from config import ExchangeMode, ExecutorSettings, ModelCheck, Settings
from executor.clock import CandlePriceFeed, Clock, FixedPriceFeed, PriceFeed, ReplayClock, SystemClock
from executor.exchanges.base import Exchange
from executor.exchanges.paper import PaperExchange
from executor.reconcile import Reconciliation
from executor.service import Executor
from executor.validate import ModelGate, check_intent

log = get_logger(__name__)
SERVICE = "executor"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Intents per poll (and at most per transaction) in replays. Not tuned: a transaction ends at the
#: next trade anyway (ADR 0018), and a replay trades on a few percent of its ticks.
REPLAY_BATCH = 200


def model_gate(executor: Executor, options: ExecutorSettings) -> ModelGate | None:
    """The gate for this namespace, or None when any model id may trade here (logged either way)."""
    check = options.model_check or (
        ModelCheck.REGISTRY if executor.namespace == LIVE_NAMESPACE else ModelCheck.OFF
    )
    extra = [m.strip() for m in options.allowed_models.split(",") if m.strip()]
    log.info("model_check", namespace=executor.namespace, check=check.value, extra_allowed=extra)
    if check is ModelCheck.OFF:
        if executor.settings.exchange.mode is ExchangeMode.KRAKEN:
            log.warning("model_check_off_on_kraken", namespace=executor.namespace)
        return None
    return ModelGate(executor.engine, extra)


def namespace_for(settings: Settings, options: ExecutorSettings | None = None) -> str:
    options = options or settings.executor
    return options.namespace or settings.kafka.topic_prefix or LIVE_NAMESPACE


def build_exchange(settings: Settings, engine: Engine, namespace: str, options: ExecutorSettings) -> Exchange:
    if settings.exchange.mode is ExchangeMode.KRAKEN:
        from executor.exchanges.kraken import KrakenFutures  # ccxt import only when trading for real

        pace = None if options.ccxt_rate_limit_ms is None else {"rateLimit": options.ccxt_rate_limit_ms}
        return KrakenFutures.from_settings(settings, client_options=pace)
    prices: PriceFeed = (
        FixedPriceFeed(options.fixed_price)
        if options.fixed_price is not None
        else CandlePriceFeed(
            engine,
            settings.symbol,
            options.price_timeframe or settings.min_timeframe,
            prefetch=2_000 if options.replay_clock else 0,
            fill_price=settings.exchange.fill_price,
        )
    )
    return PaperExchange(
        engine,
        namespace,
        prices,
        symbol=settings.symbol,
        taker_fee_rate=settings.exchange.taker_fee,
        slippage_bps=settings.exchange.slippage_bps,
        funding_rate_hourly=options.funding_rate_hourly,
    )


def build_executor(settings: Settings, options: ExecutorSettings | None = None) -> Executor:
    options = options or settings.executor
    engine = make_engine(settings.database_url.get_secret_value(), statement_timeout_ms=60_000)
    namespace = namespace_for(settings, options)
    exchange = build_exchange(settings, engine, namespace, options)
    clock: Clock = ReplayClock(_EPOCH) if options.replay_clock else SystemClock()
    return Executor(settings, engine, exchange, clock, namespace)


def startup_reconcile(executor: Executor, *, repair: bool = False) -> Reconciliation:
    """Log whether venue and book agree; disagreement is then refused intent by intent.

    With ``repair`` (the service at start) our own late fills are booked and our stale working
    remainders cancelled at once (executor/reconcile.py); without it (``python -m executor
    reconcile``) nothing is changed, only shown.
    """
    rec = executor.reconcile_now(repair=repair)
    if rec.ok:
        log.info("reconcile_ok", position=rec.venue_position, namespace=executor.namespace)
    else:
        log.error("reconcile_mismatch", problems=list(rec.problems), namespace=executor.namespace)
    return rec


def batch_size(options: ExecutorSettings) -> int:
    """Intents per poll: ``options.batch_size``, else 1 live and REPLAY_BATCH with the replay clock.

    Live, an intent arrives every few minutes, so a batch would only ever hold one; a replay
    delivers thousands back to back, and one transaction per intent was its bottleneck.
    """
    if options.batch_size is not None:
        return options.batch_size
    return REPLAY_BATCH if options.replay_clock else 1


def run(
    settings: Settings,
    executor: Executor | None = None,
    *,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    shutdown: GracefulShutdown | None = None,
) -> LoopStats:
    """Consume intents in order (one at a time live, in batches in replays, see :func:`batch_size`);
    unexpected errors stop the loop (nothing skipped).

    Poison intents (executor/validate.py) are dead-lettered and the loop goes on; an unknown
    writer schema makes it wait without committing (``ConsumerLoop.ready`` is False meanwhile).
    """
    options = settings.executor
    executor = executor or build_executor(settings, options)
    # Started during a Postgres outage, the first connect times out: retry (the repair books by
    # venue fill id, so a repeated attempt after a rolled-back one changes nothing twice).
    with_db_retry(lambda: startup_reconcile(executor, repair=True), what="startup reconcile")
    producer = EventProducer(settings, SERVICE)
    out_topic = settings.topic(EXECUTIONS)

    batch = batch_size(options)

    def publish(report: ExecutionReport) -> None:
        producer.send(out_topic, report, key=report.intent_id)
        if batch == 1:
            producer.flush()  # delivered BEFORE the DB commit: a crash after it re-sends, never loses

    gate = model_gate(executor, options)
    pending: list[OrderIntent] = []

    def on_intent(intent: OrderIntent, _msg: object) -> None:
        # Poison (never handleable) is refused before anything is touched: dead-lettered with the
        # reason and committed. Anything raised later stops the loop uncommitted (ADR 0007).
        check_intent(intent)
        if gate is not None:
            gate.check(intent)
        if batch == 1:
            executor.handle(intent, publish)
        else:
            pending.append(intent)

    def handle_pending() -> None:
        # The loop's after-batch step, before it commits the offsets: the polled intents in as
        # few transactions as exactly-once allows, reports flushed before each commit (ADR 0018).
        intents = list(pending)
        pending.clear()
        if intents:
            executor.handle_batch(intents, publish, producer.flush)

    # Static membership: a restarted executor takes the intents partition back at once instead of
    # waiting out the dead member's session, and a zombie with the same id is fenced by the broker.
    loop = ConsumerLoop(
        settings,
        extra_config={"group.instance.id": f"{options.instance_id}-{executor.namespace}"},
        service=SERVICE,
        group_id=f"{settings.kafka.topic_prefix}{SERVICE}",
        topics=[settings.topic(INTENTS)],
        handler=on_intent,
        producer=producer,
        expected=OrderIntent,
        on_error=OnError.STOP,
        # An intent written by a newer contract version is never skipped: resolved from the schema
        # store, else the loop waits uncommitted (and not ready) until it can read it (ADR 0014).
        on_unknown_schema=OnUnknownSchema.WAIT,
        batch_size=batch,
        after_batch=handle_pending if batch > 1 else None,
        shutdown=shutdown,
    )
    return loop.run(max_messages=max_messages, idle_timeout=idle_timeout)
