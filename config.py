"""Typed settings for every service, read once at start.

Every value can be overridden by an environment variable with the ``BTCMETA_`` prefix; nested
groups use a double underscore (``BTCMETA_RISK__MAX_POSITION_BTC=0.5``). A wrong value stops the
start with a message naming the variable, because a trading system that starts with a guessed
setting is worse than one that does not start. Secrets are ``SecretStr`` (printed masked) and may be
1Password references (``op://vault/item/field``) resolved through the ``op`` CLI at start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.timeframes import parse_timeframe

ENV_PREFIX = "BTCMETA_"


class KafkaSecurity(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    #: AWS MSK with IAM auth: SASL_SSL + OAUTHBEARER, tokens from the MSK IAM signer.
    MSK_IAM = "MSK_IAM"


class ExchangeMode(StrEnum):
    PAPER = "paper"
    KRAKEN = "kraken"


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
    #: Per request timeout, and attempts before a source counts as unreachable.
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("fear_greed_url", "news_rss_url", "sentiment_url", "kraken_futures_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL or empty")
        return value


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
    symbol: str = "BTC/USD:USD"
    database_url: SecretStr = SecretStr("postgresql+psycopg://btcmeta@127.0.0.1:55432/btcmeta")
    registry_path: str = "strategies_registry.json"
    kafka: KafkaSettings = KafkaSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    risk: RiskLimits = RiskLimits()
    training: TrainingSettings = TrainingSettings()
    exogenous: ExogenousSettings = ExogenousSettings()
    #: Meta consumer action grid: one INCREASE/DECREASE moves exposure by this fraction of the max.
    exposure_step: float = Field(default=0.25, gt=0, le=1)
    max_exposure: float = Field(default=1.0, gt=0, le=1)
    #: Port for Prometheus metrics; 0 disables the endpoint (tests run many services side by side).
    metrics_port: int = Field(default=0, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool = True

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
