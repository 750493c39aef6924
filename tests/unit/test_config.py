"""Settings: environment overrides, validation that names the setting, secrets masked."""

from __future__ import annotations

import os

import pytest

from common.kafka.configuration import consumer_config, producer_config
from config import ExchangeMode, KafkaSecurity, SettingsError, load_settings


def test_defaults_are_local_and_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("BTCMETA_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.exchange.mode is ExchangeMode.PAPER
    assert s.kafka.security is KafkaSecurity.PLAINTEXT
    assert s.kafka.bootstrap_servers.startswith("127.0.0.1:")
    assert s.topic("orders.intents") == "orders.intents"


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_GLOBAL_TICK", "5m")
    monkeypatch.setenv("BTCMETA_RISK__MAX_POSITION_BTC", "2.5")
    monkeypatch.setenv("BTCMETA_KAFKA__TOPIC_PREFIX", "replay.r1.")
    s = load_settings()
    assert s.global_tick_minutes == 5
    assert s.risk.max_position_btc == 2.5
    assert s.topic("market.bars.1h") == "replay.r1.market.bars.1h"


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("BTCMETA_RISK__MAX_POSITION_BTC", "-1", "BTCMETA_RISK__MAX_POSITION_BTC"),
        ("BTCMETA_GLOBAL_TICK", "7x", "BTCMETA_GLOBAL_TICK"),
        ("BTCMETA_MIN_TIMEFRAME", "0m", "BTCMETA_MIN_TIMEFRAME"),
        ("BTCMETA_EXCHANGE__MODE", "binance", "BTCMETA_EXCHANGE__MODE"),
        ("BTCMETA_KAFKA__SECURITY", "SSL", "BTCMETA_KAFKA__SECURITY"),
        ("BTCMETA_KAFKA__TOPIC_PREFIX", "Replay", "BTCMETA_KAFKA__TOPIC_PREFIX"),
        ("BTCMETA_MAX_LOOKBACK_HOURS", "abc", "BTCMETA_MAX_LOOKBACK_HOURS"),
        ("BTCMETA_LOG_LEVEL", "LOUD", "BTCMETA_LOG_LEVEL"),
    ],
)
def test_invalid_value_stops_with_setting_name(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert named in str(err.value)


def test_order_limit_larger_than_position_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_RISK__MAX_POSITION_BTC", "0.1")
    monkeypatch.setenv("BTCMETA_RISK__MAX_ORDER_BTC", "0.2")
    with pytest.raises(SettingsError, match="BTCMETA_RISK"):
        load_settings()


def test_kraken_mode_needs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_EXCHANGE__MODE", "kraken")
    with pytest.raises(SettingsError, match="API_KEY"):
        load_settings()


def test_secrets_are_masked_when_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "k3y-" + "x" * 20
    monkeypatch.setenv("BTCMETA_EXCHANGE__MODE", "kraken")
    monkeypatch.setenv("BTCMETA_EXCHANGE__API_KEY", secret)
    monkeypatch.setenv("BTCMETA_EXCHANGE__API_SECRET", secret + "s")
    monkeypatch.setenv("BTCMETA_DATABASE_URL", f"postgresql+psycopg://u:{secret}@db/x")
    s = load_settings()
    for text in (repr(s), str(s), s.model_dump_json(), str(s.model_dump())):
        assert secret not in text
    assert s.exchange.api_key is not None and s.exchange.api_key.get_secret_value() == secret


def test_op_reference_without_op_cli_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("BTCMETA_DATABASE_URL", "op://vault/db/url")
    with pytest.raises(ValueError, match=r"BTCMETA_DATABASE_URL.*'op' CLI"):
        load_settings().resolved()


def test_librdkafka_configs_enforce_delivery_guarantees() -> None:
    s = load_settings(kafka={"bootstrap_servers": "127.0.0.1:1"})
    prod = producer_config(s)
    assert prod["enable.idempotence"] is True and prod["acks"] == "all"
    cons = consumer_config(s, "g")
    assert cons["enable.auto.commit"] is False and cons["enable.auto.offset.store"] is False


def test_msk_iam_config_uses_oauthbearer() -> None:
    s = load_settings(kafka={"bootstrap_servers": "b-1.msk:9098", "security": "MSK_IAM"})
    conf = producer_config(s)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanisms"] == "OAUTHBEARER"
    assert callable(conf["oauth_cb"])
