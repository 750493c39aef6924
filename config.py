"""Typed settings for every service, read once at start.

Every value can be overridden by an environment variable with the ``BTCMETA_`` prefix; nested
groups use a double underscore (``BTCMETA_RISK__MAX_POSITION_BTC=0.5``). The services' own knobs
are groups of this one tree too (``settings.meta``, ``settings.executor``, ``settings.bridge``:
``BTCMETA_META__DEADLINE_S=20``), so a value is looked up in one place whichever service reads it;
their former names (``BTCMETA_META_DEADLINE_S``, one underscore) still work for one release, with a
DeprecationWarning and a log line naming the new variable. A wrong value stops the
start with a message naming the variable, because a trading system that starts with a guessed
setting is worse than one that does not start. Secrets are ``SecretStr`` (printed masked) and may be
1Password references (``op://vault/item/field``) resolved through the ``op`` CLI at start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from common.timeframes import parse_timeframe

ENV_PREFIX = "BTCMETA_"


class KafkaSecurity(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    #: AWS MSK with IAM auth: SASL_SSL + OAUTHBEARER, tokens from the MSK IAM signer.
    MSK_IAM = "MSK_IAM"


class ExchangeMode(StrEnum):
    PAPER = "paper"
    KRAKEN = "kraken"


class FillPrice(StrEnum):
    """The price a decision taken at a bar's close trades at (docs/decisions/0017-fill-price-model.md).

    ``next_open``: the open of the next bar, i.e. the first price after the signal bar has closed:
    what a market order sent on that close can really get (and what freqtrade fills at). The last
    bar of a series has no next bar: a decision there trades at that bar's close.
    ``signal_close``: the signal bar's own close, the price the decision was computed from; it is
    only reachable if the order executes in the same instant the bar closes (optimistic).
    """

    NEXT_OPEN = "next_open"
    SIGNAL_CLOSE = "signal_close"


def resolve_secret(value: SecretStr | None, setting: str) -> SecretStr | None:
    """Resolve a 1Password reference (``op://...``) to its value; plain values pass through.

    The reference itself is not secret, so errors may name it; the resolved value never appears.
    """
    if value is None:
        return None
    raw = value.get_secret_value()
    if not raw.startswith("op://"):
        return value
    op = shutil.which("op")
    if op is None:
        raise ValueError(f"{setting} is a 1Password reference but the 'op' CLI is not installed")
    done = subprocess.run([op, "read", "--no-newline", raw], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise ValueError(f"{setting}: 'op read' failed for the reference (exit {done.returncode})")
    return SecretStr(done.stdout)


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "127.0.0.1:39092"
    security: KafkaSecurity = KafkaSecurity.PLAINTEXT
    #: AWS region of the MSK cluster (MSK_IAM only).
    aws_region: str = "eu-west-1"
    #: Prepended to every topic name; replays and tests use their own so they never touch live topics.
    topic_prefix: str = ""
    client_id: str = "btcmeta"
    #: How long a consumer may work on one message before the group considers it dead.
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_shape(cls, value: str) -> str:
        if value and not value.endswith("."):
            raise ValueError("must be empty or end with '.' (e.g. 'replay.r42.')")
        if any(c not in "abcdefghijklmnopqrstuvwxyz0123456789._-" for c in value):
            raise ValueError("may contain only lower-case letters, digits, '.', '_' and '-'")
        return value


class RiskLimits(BaseModel):
    """Hard limits the executor enforces before any order; refusals are logged with the limit's name."""

    max_position_btc: float = Field(default=1.0, gt=0)
    max_order_btc: float = Field(default=0.5, gt=0)
    daily_loss_cap_usd: float = Field(default=2_000.0, gt=0)
    max_orders_per_hour: int = Field(default=20, gt=0)
    #: Oldest tick an intent may still trade: seconds from the tick time (the bar close the intent
    #: decides) to the executor's clock (wall clock live, replayed time in a replay).
    max_intent_age_s: float = Field(default=120.0, gt=0)
    #: How far a tick may lie ahead of the executor's clock (host clock skew) before it is refused.
    max_clock_skew_s: float = Field(default=5.0, ge=0, le=300)
    #: Oldest venue mark (by the venue's own timestamp, when it gives one) that may value the book.
    max_mark_age_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _order_within_position(self) -> RiskLimits:
        if self.max_order_btc > self.max_position_btc:
            raise ValueError("max_order_btc must not exceed max_position_btc")
        return self


class ExchangeSettings(BaseModel):
    mode: ExchangeMode = ExchangeMode.PAPER
    #: CCXT unified symbol of Kraken Futures' BTC perpetual (PF_XBTUSD).
    ccxt_id: str = "krakenfutures"
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    #: Base URL override, used to point CCXT at the local Kraken Futures stand-in in tests.
    base_url: str | None = None
    taker_fee: float = Field(default=0.0005, ge=0, lt=0.01)
    slippage_bps: float = Field(default=1.0, ge=0, lt=100)
    #: Execution model of the paper venue, the replay comparison and the vectorized backtest alike
    #: (``BTCMETA_EXCHANGE__FILL_PRICE``); the default is what live trading gets.
    fill_price: FillPrice = FillPrice.NEXT_OPEN


class TrainingSettings(BaseModel):
    """The offline training project (``python -m training``): where results and model files go.

    The results database is the training team's record of runs and evaluations. It defaults to an
    embedded SQLite file so a laptop needs nothing running; point it at the team's PostgreSQL
    (``BTCMETA_TRAINING__RESULTS_DATABASE_URL=postgresql+psycopg://...``) to share one leaderboard.
    Model files and equity curves stay on the machine that trained them, under ``artifacts_dir``.
    """

    results_database_url: SecretStr = SecretStr("sqlite:///out/training/results.db")
    artifacts_dir: str = "out/training"


class ExogenousSettings(BaseModel):
    """Exogenous (non-price) data: where the shared files are and the live sources' URLs.

    Each live source is behind its own URL so tests point it at a local stand-in and an operator
    can switch one off (empty value) without touching the others.
    """

    #: Folder of the shared exogenous CSV files (``python -m producers exogenous import``).
    data_dir: str = "../shared/data/exogenous"
    #: alternative.me Crypto Fear & Greed API (``/fng/`` endpoint; ``?limit=N&format=json`` is added).
    fear_greed_url: str = "https://api.alternative.me/fng/"
    #: How many days of Fear & Greed one poll asks for (a short outage is caught up on the next poll).
    fear_greed_limit: int = Field(default=10, ge=1, le=5000)
    #: A crypto news RSS/Atom feed.
    news_rss_url: str = "https://cointelegraph.com/rss/tag/bitcoin"
    #: A JSON source of daily BTC mentions and sentiment (``{"data": [{"date": ..., ...}]}``);
    #: empty: not polled (there is no free public default).
    sentiment_url: str = ""
    #: Kraken Futures REST root (``https://futures.kraken.com``), read through CCXT's
    #: ``krakenfutures`` (public endpoints, no keys): funding-rate history and open interest of
    #: ``kraken_symbol``. Empty (the default): both Kraken sources are off.
    kraken_futures_url: str = ""
    #: CCXT unified symbol of the perpetual (``BTC/USD:USD`` is Kraken's PF_XBTUSD); empty: off.
    kraken_symbol: str = "BTC/USD:USD"
    #: Funding rates older than this many days are not asked for again. A poll re-reads this window
    #: (stored rates count as unchanged), and after a longer outage resumes at the last stored rate.
    kraken_funding_days: int = Field(default=7, ge=1, le=3650)
    #: Binance USD-M futures REST root: its public funding-rate history
    #: (``/fapi/v1/fundingRate``, no key) of ``binance_symbol`` feeds ``funding_binance_8h``, the
    #: series the research and the linear combiners read (ADR 0025). Empty: off.
    binance_futures_url: str = "https://fapi.binance.com"
    binance_symbol: str = "BTCUSDT"
    #: As ``kraken_funding_days``: the window re-read on every poll (an outage resumes at the last
    #: stored settlement).
    binance_funding_days: int = Field(default=3, ge=1, le=3650)
    #: Per request timeout, and attempts before a source counts as unreachable.
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    attempts: int = Field(default=3, ge=1, le=10)

    @field_validator(
        "fear_greed_url", "news_rss_url", "sentiment_url", "kraken_futures_url", "binance_futures_url"
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL or empty")
        return value


class FallbackMode(StrEnum):
    """What decides in the meta consumer when no usable model is selected."""

    MAJORITY_VOTE = "majority_vote"
    FLAT = "flat"


class StrategySettings(BaseModel):
    """The strategy services' own knobs (``BTCMETA_STRATEGY__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Answer each new bar with the strategy's incremental stepper (O(1) per bar) where it has one,
    #: instead of recomputing the window's warm tail (ADR 0022). Off: every bar is recomputed.
    step: bool = True
    #: Every this many stepped bars the window path runs beside the stepper and wins on any
    #: difference (logged, counted, the stepper reseeded). 1 checks every bar.
    guard_bars: int = Field(default=24, ge=1, le=100_000)


class MetaSettings(BaseModel):
    """The meta consumer's own knobs (``BTCMETA_META__*``; formerly ``BTCMETA_META_*``)."""

    model_config = ConfigDict(frozen=True)

    #: Wall-clock seconds, counted from the TickPlan's arrival here, before a tick is decided with
    #: what arrived (degraded). Not the plan's own ``deadline`` field: that one is data time, which
    #: in a replay of 2019 candles has passed long ago.
    deadline_s: float = Field(default=30.0, gt=0, le=3600)
    fallback: FallbackMode = FallbackMode.MAJORITY_VOTE
    #: Run a model whose strategy set differs from the registry on its own subset (missing
    #: strategies read as "no recommendation") instead of refusing it. Either way: retrain needed.
    allow_subset: bool = False
    #: Timeframe whose BarClosed marks the model portfolio (close price, volatility window).
    decision_timeframe: str = "1h"
    #: How often the models table is polled for a new selection; 0 means before every tick.
    model_poll_s: float = Field(default=0.0, ge=0)
    #: Warn when the executor's position (as a fraction of max) differs from the model's by more.
    drift_tolerance: float = Field(default=0.25, gt=0)
    #: Most messages per consume batch: one Postgres transaction and one offset commit each. The
    #: shared loop hands over what has arrived without waiting for the batch to fill, so a large
    #: value costs no latency; it only bounds the batch under a backlog (catch-up, replays).
    batch_size: int = Field(default=100, ge=1, le=10_000)
    #: Most ready ticks decided in one transaction, their intents flushed together. Live, one tick
    #: is ready at a time; under a backlog (catch-up, replays) this turns per-tick round trips
    #: (model poll, answers, insert, commit, flush) into per-batch ones. A restart re-sends the
    #: whole last batch's intents (the executor refuses the copies by id).
    decide_batch: int = Field(default=100, ge=1, le=1_000)
    group_id: str = "meta-consumer"
    #: Pin this model (by ``models.model_id``) instead of the selected one: topic-replay backtests
    #: run a given model without touching the live selection. Empty: the selected model decides.
    model_id: str = ""
    #: Kafka static membership id: a restarted pod takes its partitions back at once instead of
    #: waiting for the dead member's session to time out. Empty disables it.
    group_instance_id: str = ""

    @field_validator("decision_timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        parse_timeframe(value)
        return value


#: The paper venue's default funding rate per hour (executor/exchanges/paper.py and the training
#: cost model use this one value, so the simulated and the replayed book cannot drift).
DEFAULT_FUNDING_RATE_HOURLY = 0.0000125


class ModelCheck(StrEnum):
    """Which model ids the executor accepts intents from."""

    #: The registry's selected model, the documented fallbacks, the operator, plus configured extras.
    REGISTRY = "registry"
    #: Any model id (replays and tests in namespaces of their own, where models are pinned).
    OFF = "off"


class ExecutorSettings(BaseModel):
    """The executor's own knobs (``BTCMETA_EXECUTOR__*``; formerly ``BTCMETA_EXECUTOR_*``)."""

    model_config = ConfigDict(frozen=True)

    #: Row namespace; default: 'live' for the live topic prefix, the prefix otherwise (like the tick emitter).
    namespace: str | None = None
    funding_rate_hourly: float = DEFAULT_FUNDING_RATE_HOURLY
    #: Paper venue price: a fixed price (tests, synthetic replays) instead of the candles table.
    fixed_price: float | None = None
    #: Candle timeframe the paper venue prices from (default: settings.min_timeframe).
    price_timeframe: str | None = None
    #: Topic-replay backtests: time follows the intents' tick times instead of the wall clock.
    replay_clock: bool = False
    #: Intents taken per poll and handled in as few transactions as exactly-once allows (ADR 0018).
    #: Unset: 1 live (one intent per transaction), ``executor.runner.REPLAY_BATCH`` with the replay clock.
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    #: Kafka static membership id (Kafka group.instance.id); one executor per namespace, so one id.
    instance_id: str = "executor-0"
    #: CCXT's pause between venue calls in ms; unset keeps the exchange's own (Kraken Futures:
    #: 600). Only for the local stand-in (the chaos suite), which has no rate limit to respect.
    ccxt_rate_limit_ms: int | None = None
    #: Which model ids may trade (executor/validate.py). Default: 'registry' in the live namespace
    #: (selected model, fallbacks, operator), 'off' in replay/test namespaces (pinned models).
    model_check: ModelCheck | None = None
    #: Extra model ids allowed under 'registry', comma-separated (e.g. a pinned replay model).
    allowed_models: str = ""


class BridgeSettings(BaseModel):
    """The bridge's own knobs: port, TLS, API tokens, rate limits, stream buffer.

    ``BTCMETA_BRIDGE__*`` (formerly ``BTCMETA_BRIDGE_*``). Tokens are parsed and resolved by
    ``bridge.settings.api_tokens`` at the bridge's start; here they are only values.
    """

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: JSON lists of ``name:secret`` entries (``'["alice:..."]'``); empty lists mean nobody gets in.
    viewer_tokens: list[SecretStr] = Field(default_factory=list)
    operator_tokens: list[SecretStr] = Field(default_factory=list)
    #: Namespace shown when a request names none (a demo bridge may default to a replay's namespace).
    #: The default is ``common.db.base.LIVE_NAMESPACE``, spelled out so config imports no SQLAlchemy.
    default_namespace: str = "live"
    #: Events kept for reconnecting SSE clients (Last-Event-ID); older ones are gone for good.
    stream_buffer: int = Field(default=2_000, ge=10, le=1_000_000)
    #: Whether to run the Kafka consumer feeding /api/stream (off for REST-only tests and tools).
    stream_enabled: bool = True
    #: Seconds between SSE keep-alive comments, so proxies do not cut idle streams.
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    #: Tripping the kill switch also publishes a FLAT intent (as `python -m executor kill-switch`
    #: does), so the executor flattens now instead of at the next tick's intent.
    flatten_on_trip: bool = True
    #: A service whose last heartbeat is older than this is reported as stale.
    heartbeat_stale_s: float = Field(default=120.0, gt=0)
    #: Control endpoints (kill switch, pause/resume, model select): each client gets a bucket of
    #: ``control_burst`` requests refilled at ``control_rate_per_min``; 0 switches limiting off.
    control_rate_per_min: float = Field(default=30.0, ge=0)
    control_burst: int = Field(default=10, ge=1, le=10_000)
    #: Serve HTTPS: PEM certificate (chain) and private key files; both or neither. Without them
    #: the bridge speaks plain HTTP, fit only behind a TLS-terminating ingress or on 127.0.0.1.
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    #: Password of an encrypted private key (may be a 1Password reference).
    tls_keyfile_password: SecretStr | None = None

    @field_validator("default_namespace")
    @classmethod
    def _namespace_shape(cls, value: str) -> str:
        if not value or len(value) > 64:
            raise ValueError("must be 1..64 characters")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> BridgeSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("tls_certfile and tls_keyfile go together: set both (HTTPS) or neither")
        for path in (self.tls_certfile, self.tls_keyfile):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS file not found: {path}")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None


#: The services' former environment prefixes (their own settings classes before this tree), kept
#: for one release: ``BTCMETA_META_DEADLINE_S`` still sets ``settings.meta.deadline_s``.
LEGACY_GROUP_PREFIXES: dict[str, tuple[str, type[BaseModel]]] = {
    "meta": ("BTCMETA_META_", MetaSettings),
    "executor": ("BTCMETA_EXECUTOR_", ExecutorSettings),
    "bridge": ("BTCMETA_BRIDGE_", BridgeSettings),
}

_log = logging.getLogger(__name__)


def new_env_name(group: str, field: str) -> str:
    """The variable that sets ``settings.<group>.<field>``: ``BTCMETA_META__DEADLINE_S``."""
    return f"{ENV_PREFIX}{group.upper()}__{field.upper()}"


def _deprecated(message: str) -> None:
    """Say it twice: a DeprecationWarning for tests and tools, a log line for people reading logs."""
    warnings.warn(message, DeprecationWarning, stacklevel=4)
    _log.warning(message)


class LegacyEnvSource(PydanticBaseSettingsSource):
    """Reads the former per-service variables (``BTCMETA_META_X``) into their group of the tree.

    It ranks below the environment source, so when both names are set the new one wins (and the old
    one is reported as ignored). Delete after one release.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds the whole mapping at once

    def __call__(self) -> dict[str, Any]:
        env = {key.upper(): value for key, value in os.environ.items()}
        found: dict[str, Any] = {}
        for group, (prefix, model) in LEGACY_GROUP_PREFIXES.items():
            for name, info in model.model_fields.items():
                old, new = f"{prefix}{name.upper()}", new_env_name(group, name)
                if old not in env:
                    continue
                if new in env:
                    _deprecated(f"{old} is ignored because {new} is set; remove {old} (deprecated)")
                    continue
                _deprecated(f"{old} is deprecated and will stop working in the next release; use {new}")
                value: Any = env[old]
                if get_origin(info.annotation) is list:  # lists come as JSON, like the new names
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError as exc:
                        raise SettingsError(
                            f"invalid configuration:\n  {old}: not a JSON list ({exc.msg})"
                        ) from None
                found.setdefault(group, {})[name] = value
        return found


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    #: How often the scheduler fires, e.g. "1m".
    global_tick: str = "1m"
    #: Base candle timeframe stored in Postgres; every strategy timeframe must be a multiple of it.
    min_timeframe: str = "1m"
    #: Longest strategy window; OTT needs 4200 h for exact parity (docs/decisions/0004-strategy-parity.md).
    max_lookback_hours: int = Field(default=4320, gt=0, le=24 * 365)
    #: BarClosed v3 (ADR 0028): a bars topic gets a keyframe (the whole window) once its last one is
    #: this old in tick time, continuations (the changed tail) in between. 0: keyframes only (the
    #: wire before v3). Keep it well under the bars topics' retention: consumers read back to it.
    bar_keyframe_hours: float = Field(default=24.0, ge=0, le=72)
    symbol: str = "BTC/USD:USD"
    database_url: SecretStr = SecretStr("postgresql+psycopg://btcmeta@127.0.0.1:55432/btcmeta")
    registry_path: str = "strategies_registry.json"
    kafka: KafkaSettings = KafkaSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    risk: RiskLimits = RiskLimits()
    training: TrainingSettings = TrainingSettings()
    exogenous: ExogenousSettings = ExogenousSettings()
    meta: MetaSettings = MetaSettings()
    strategy: StrategySettings = StrategySettings()
    executor: ExecutorSettings = ExecutorSettings()
    bridge: BridgeSettings = BridgeSettings()
    #: Meta consumer action grid: one INCREASE/DECREASE moves exposure by this fraction of the max.
    exposure_step: float = Field(default=0.25, gt=0, le=1)
    max_exposure: float = Field(default=1.0, gt=0, le=1)
    #: Port for Prometheus metrics; 0 disables the endpoint (tests run many services side by side).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool = True

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then ``BTCMETA_*``, then the deprecated per-service names."""
        return (
            init_settings,
            env_settings,
            LegacyEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("global_tick", "min_timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        parse_timeframe(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _consistency(self) -> Settings:
        if parse_timeframe(self.global_tick) % parse_timeframe(self.min_timeframe) != 0 and (
            parse_timeframe(self.min_timeframe) % parse_timeframe(self.global_tick) != 0
        ):
            raise ValueError("global_tick and min_timeframe must divide one another")
        if self.exchange.mode is ExchangeMode.KRAKEN and (
            self.exchange.api_key is None or self.exchange.api_secret is None
        ):
            raise ValueError(
                "exchange.mode=kraken needs BTCMETA_EXCHANGE__API_KEY and BTCMETA_EXCHANGE__API_SECRET"
            )
        return self

    @property
    def min_timeframe_minutes(self) -> int:
        return parse_timeframe(self.min_timeframe)

    @property
    def global_tick_minutes(self) -> int:
        return parse_timeframe(self.global_tick)

    def topic(self, name: str) -> str:
        """Topic name with the deployment prefix: ``market.bars.1h`` -> ``replay.r1.market.bars.1h``."""
        return f"{self.kafka.topic_prefix}{name}"

    def resolved(self) -> Settings:
        """A copy with 1Password references replaced by their values (done once at service start)."""
        exchange = self.exchange.model_copy(
            update={
                "api_key": resolve_secret(self.exchange.api_key, "BTCMETA_EXCHANGE__API_KEY"),
                "api_secret": resolve_secret(self.exchange.api_secret, "BTCMETA_EXCHANGE__API_SECRET"),
            }
        )
        db = resolve_secret(self.database_url, "BTCMETA_DATABASE_URL")
        resolved = self.model_copy(update={"exchange": exchange, "database_url": db})
        from common.logging import register_secrets_from  # every log path masks these values

        register_secrets_from(resolved)
        return resolved


def env_name(loc: tuple[Any, ...]) -> str:
    """The environment variable that sets the field at ``loc`` (what a person must fix)."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    return ENV_PREFIX + "__".join(p.upper() for p in parts)


class SettingsError(SystemExit):
    """Raised instead of a traceback: the message names each bad setting and why."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (plus explicit overrides) or stop with a clear message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = env_name(err["loc"]) if err["loc"] else "settings"
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; services call this once at start (tests build their own)."""
    return load_settings()


if __name__ == "__main__":  # `python config.py` prints the effective configuration, secrets masked.
    try:
        print(get_settings().model_dump_json(indent=2))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise
