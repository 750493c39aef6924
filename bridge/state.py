"""What one running bridge holds for its lifetime: settings, the engine, the tokens, the event hub."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from bridge.settings import ApiToken, BridgeSettings
from bridge.stream import EventHub
from config import Settings


@dataclass
class BridgeState:
    settings: Settings
    bridge: BridgeSettings
    engine: Engine
    tokens: list[ApiToken]
    hub: EventHub
