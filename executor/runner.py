"""Wiring: settings -> engine, venue, clock, consumer loop. Kept apart so tests build the same thing.

Executor-only knobs are read from their own environment variables (``BTCMETA_EXECUTOR_*``)
rather than added to the shared ``config.Settings``, so this service can evolve without touching
every other service's configuration; the lead may fold them into ``config.py`` later.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine

from common.db.base import LIVE_NAMESPACE
from common.db.session import make_engine, session_scope
from common.events import ExecutionReport, OrderIntent
from common.kafka.consumer import ConsumerLoop, LoopStats, OnError
from common.kafka.producer import EventProducer
from common.kafka.topics import EXECUTIONS, INTENTS
from common.logging import get_logger
from common.shutdown import GracefulShutdown
from config import ExchangeMode, Settings
from executor.clock import CandlePriceFeed, Clock, FixedPriceFeed, PriceFeed, ReplayClock, SystemClock
from executor.exchanges.base import Exchange
from executor.exchanges.paper import DEFAULT_FUNDING_RATE_HOURLY, PaperExchange
from executor.reconcile import Reconciliation, reconcile
from executor.service import Executor

log = get_logger(__name__)
SERVICE = "executor"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExecutorOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BTCMETA_EXECUTOR_", frozen=True, extra="ignore")

    #: Row namespace; default: 'live' for the live topic prefix, the prefix otherwise (like the tick emitter).
    namespace: str | None = None
    funding_rate_hourly: float = DEFAULT_FUNDING_RATE_HOURLY
    #: Paper venue price: a fixed price (tests, synthetic replays) instead of the candles table.
    fixed_price: float | None = None
    #: Candle timeframe the paper venue prices from (default: settings.min_timeframe).
    price_timeframe: str | None = None
    #: Topic-replay backtests: time follows the intents' tick times instead of the wall clock.
    replay_clock: bool = False
    #: Kafka static membership id (Kafka group.instance.id); one executor per namespace, so one id.
    instance_id: str = "executor-0"


def namespace_for(settings: Settings, options: ExecutorOptions | None = None) -> str:
    options = options or ExecutorOptions()
    return options.namespace or settings.kafka.topic_prefix or LIVE_NAMESPACE


def build_exchange(settings: Settings, engine: Engine, namespace: str, options: ExecutorOptions) -> Exchange:
    if settings.exchange.mode is ExchangeMode.KRAKEN:
        from executor.exchanges.kraken import KrakenFutures  # ccxt import only when trading for real

        return KrakenFutures.from_settings(settings)
    prices: PriceFeed = (
        FixedPriceFeed(options.fixed_price)
        if options.fixed_price is not None
        else CandlePriceFeed(
            engine,
            settings.symbol,
            options.price_timeframe or settings.min_timeframe,
            prefetch=2_000 if options.replay_clock else 0,
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


def build_executor(settings: Settings, options: ExecutorOptions | None = None) -> Executor:
    options = options or ExecutorOptions()
    engine = make_engine(settings.database_url.get_secret_value())
    namespace = namespace_for(settings, options)
    exchange = build_exchange(settings, engine, namespace, options)
    clock: Clock = ReplayClock(_EPOCH) if options.replay_clock else SystemClock()
    return Executor(settings, engine, exchange, clock, namespace)


def startup_reconcile(executor: Executor) -> Reconciliation:
    """Log whether venue and book agree; disagreement is then refused intent by intent."""
    with session_scope(executor.engine) as s:
        rec = reconcile(s, executor.exchange, executor.namespace, executor.symbol)
    if rec.ok:
        log.info("reconcile_ok", position=rec.venue_position, namespace=executor.namespace)
    else:
        log.error("reconcile_mismatch", problems=list(rec.problems), namespace=executor.namespace)
    return rec


def run(
    settings: Settings,
    executor: Executor | None = None,
    *,
    max_messages: int | None = None,
    idle_timeout: float | None = None,
    shutdown: GracefulShutdown | None = None,
) -> LoopStats:
    """Consume intents strictly one at a time; unexpected errors stop the loop (nothing skipped)."""
    options = ExecutorOptions()
    executor = executor or build_executor(settings, options)
    startup_reconcile(executor)
    producer = EventProducer(settings, SERVICE)
    out_topic = settings.topic(EXECUTIONS)

    def publish(report: ExecutionReport) -> None:
        producer.send(out_topic, report, key=report.intent_id)
        producer.flush()  # delivered BEFORE the DB commit: a crash after it re-sends, never loses

    def on_intent(intent: OrderIntent, _msg: object) -> None:
        executor.handle(intent, publish)

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
        batch_size=1,
        shutdown=shutdown,
    )
    return loop.run(max_messages=max_messages, idle_timeout=idle_timeout)
