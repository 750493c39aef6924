"""What one running bridge holds for its lifetime: settings, the engine, the tokens, the event hub."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine

from bridge.settings import ApiToken
from bridge.stream import EventHub
from common.db.base import LIVE_NAMESPACE
from common.kafka.producer import EventProducer
from config import BridgeSettings, Settings


@dataclass
class BridgeState:
    settings: Settings
    bridge: BridgeSettings
    engine: Engine
    tokens: list[ApiToken]
    hub: EventHub
    _producer: EventProducer | None = field(default=None, repr=False)
    _producer_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def kafka_namespace(self) -> str:
        """The namespace the executor on this bridge's topics trades in (same rule as the executor)."""
        return self.settings.kafka.topic_prefix or LIVE_NAMESPACE

    def producer(self) -> EventProducer:
        """Created on first use: most bridges never publish (only a kill-switch trip does)."""
        with self._producer_lock:
            if self._producer is None:
                self._producer = EventProducer(self.settings, "bridge")
            return self._producer
