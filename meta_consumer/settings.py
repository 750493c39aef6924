"""Settings of the meta consumer only, kept out of ``config.py`` so other services never see them.

Read from ``BTCMETA_META_*`` environment variables (e.g. ``BTCMETA_META_DEADLINE_S=20``), next to
the shared :class:`config.Settings`; a bad value stops the start with the variable named, like the
shared settings do.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.timeframes import parse_timeframe
from config import SettingsError

META_ENV_PREFIX = "BTCMETA_META_"


class FallbackMode(StrEnum):
    """What decides when no usable model is selected."""

    MAJORITY_VOTE = "majority_vote"
    FLAT = "flat"


class MetaSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=META_ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

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


def load_meta_settings(**overrides: object) -> MetaSettings:
    """Meta settings from the environment (plus overrides) or a SettingsError naming each bad variable."""
    try:
        return MetaSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"  {META_ENV_PREFIX}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        ]
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
