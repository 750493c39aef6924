"""One settings tree: the services' own groups, their new names, and the old names' year of grace.

``config.Settings`` holds ``meta``, ``executor`` and ``bridge`` next to the shared groups. The new
variables (``BTCMETA_META__DEADLINE_S``) set them; the old per-service names
(``BTCMETA_META_DEADLINE_S``) still do for one release, each use warned about, and lose to the
new name when both are set.
"""

from __future__ import annotations

import logging
import os
import warnings

import pytest

from config import (
    DEFAULT_FUNDING_RATE_HOURLY,
    LEGACY_GROUP_PREFIXES,
    BridgeSettings,
    ExecutorSettings,
    FallbackMode,
    MetaSettings,
    ModelCheck,
    SettingsError,
    load_settings,
    new_env_name,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BTCMETA_* variable of the developer's shell leaks into these tests."""
    for key in list(os.environ):
        if key.upper().startswith("BTCMETA_"):
            monkeypatch.delenv(key)


def test_every_service_group_is_in_the_tree_with_unchanged_defaults() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # nothing set: nothing to warn about
        s = load_settings()
    assert isinstance(s.meta, MetaSettings)
    assert isinstance(s.executor, ExecutorSettings)
    assert isinstance(s.bridge, BridgeSettings)
    # the values the former per-service classes had
    assert (s.meta.deadline_s, s.meta.fallback, s.meta.decision_timeframe) == (
        30.0,
        FallbackMode.MAJORITY_VOTE,
        "1h",
    )
    assert (s.meta.batch_size, s.meta.decide_batch, s.meta.group_id) == (100, 100, "meta-consumer")
    assert (s.meta.model_id, s.meta.group_instance_id, s.meta.allow_subset) == ("", "", False)
    assert (s.executor.namespace, s.executor.replay_clock, s.executor.instance_id) == (
        None,
        False,
        "executor-0",
    )
    assert s.executor.funding_rate_hourly == DEFAULT_FUNDING_RATE_HOURLY == 0.0000125
    assert (s.executor.model_check, s.executor.allowed_models, s.executor.fixed_price) == (None, "", None)
    assert (s.bridge.host, s.bridge.port, s.bridge.stream_buffer) == ("127.0.0.1", 8080, 2_000)
    assert (s.bridge.viewer_tokens, s.bridge.operator_tokens, s.bridge.flatten_on_trip) == ([], [], True)
    assert (s.bridge.control_rate_per_min, s.bridge.control_burst, s.bridge.tls) == (30.0, 10, False)


def test_bridge_default_namespace_is_the_live_namespace() -> None:
    from common.db.base import LIVE_NAMESPACE  # spelled out in config (no SQLAlchemy there)

    assert load_settings().bridge.default_namespace == LIVE_NAMESPACE


def test_new_names_set_every_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_META__DEADLINE_S", "12.5")
    monkeypatch.setenv("BTCMETA_META__FALLBACK", "flat")
    monkeypatch.setenv("BTCMETA_EXECUTOR__REPLAY_CLOCK", "true")
    monkeypatch.setenv("BTCMETA_EXECUTOR__MODEL_CHECK", "registry")
    monkeypatch.setenv("BTCMETA_BRIDGE__PORT", "8123")
    monkeypatch.setenv("BTCMETA_BRIDGE__OPERATOR_TOKENS", '["ops:0123456789abcdef"]')
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        s = load_settings()
    assert (s.meta.deadline_s, s.meta.fallback) == (12.5, FallbackMode.FLAT)
    assert (s.executor.replay_clock, s.executor.model_check) == (True, ModelCheck.REGISTRY)
    assert s.bridge.port == 8123
    assert [t.get_secret_value() for t in s.bridge.operator_tokens] == ["ops:0123456789abcdef"]


@pytest.mark.parametrize(
    ("old", "value", "group", "field", "expected"),
    [
        ("BTCMETA_META_DEADLINE_S", "12.5", "meta", "deadline_s", 12.5),
        ("BTCMETA_META_FALLBACK", "flat", "meta", "fallback", FallbackMode.FLAT),
        ("BTCMETA_EXECUTOR_REPLAY_CLOCK", "true", "executor", "replay_clock", True),
        ("BTCMETA_EXECUTOR_ALLOWED_MODELS", "a,b", "executor", "allowed_models", "a,b"),
        ("BTCMETA_BRIDGE_PORT", "8123", "bridge", "port", 8123),
        ("BTCMETA_BRIDGE_HOST", "0.0.0.0", "bridge", "host", "0.0.0.0"),
    ],
)
def test_old_names_still_work_and_warn_naming_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    old: str,
    value: str,
    group: str,
    field: str,
    expected: object,
) -> None:
    monkeypatch.setenv(old, value)
    new = new_env_name(group, field)
    with (
        caplog.at_level(logging.WARNING, logger="config"),
        pytest.warns(DeprecationWarning, match=new) as caught,
    ):
        s = load_settings()
    assert getattr(getattr(s, group), field) == expected
    assert any(old in str(w.message) for w in caught)
    assert any(new in r.getMessage() and old in r.getMessage() for r in caplog.records)  # the log line too


def test_old_token_lists_are_json_like_the_new_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_BRIDGE_VIEWER_TOKENS", '["desk:0123456789abcdef", "wall:fedcba9876543210"]')
    with pytest.warns(DeprecationWarning, match="BTCMETA_BRIDGE__VIEWER_TOKENS"):
        s = load_settings()
    assert [t.get_secret_value() for t in s.bridge.viewer_tokens] == [
        "desk:0123456789abcdef",
        "wall:fedcba9876543210",
    ]
    monkeypatch.setenv("BTCMETA_BRIDGE_VIEWER_TOKENS", "desk:not-json")
    with pytest.warns(DeprecationWarning), pytest.raises(SettingsError, match="BTCMETA_BRIDGE_VIEWER_TOKENS"):
        load_settings()


def test_new_name_wins_when_both_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_META_DEADLINE_S", "11")
    monkeypatch.setenv("BTCMETA_META__DEADLINE_S", "22")
    monkeypatch.setenv("BTCMETA_EXECUTOR_REPLAY_CLOCK", "true")
    monkeypatch.setenv("BTCMETA_EXECUTOR__REPLAY_CLOCK", "false")
    monkeypatch.setenv("BTCMETA_BRIDGE_PORT", "1111")
    monkeypatch.setenv("BTCMETA_BRIDGE__PORT", "2222")
    with pytest.warns(DeprecationWarning, match="is ignored because") as caught:
        s = load_settings()
    assert (s.meta.deadline_s, s.executor.replay_clock, s.bridge.port) == (22.0, False, 2222)
    ignored = {str(w.message).split()[0] for w in caught if "is ignored" in str(w.message)}
    assert ignored == {"BTCMETA_META_DEADLINE_S", "BTCMETA_EXECUTOR_REPLAY_CLOCK", "BTCMETA_BRIDGE_PORT"}


def test_old_and_new_names_of_different_fields_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment half-way through renaming keeps every value it sets, whichever name it uses."""
    monkeypatch.setenv("BTCMETA_META_DEADLINE_S", "11")
    monkeypatch.setenv("BTCMETA_META__FALLBACK", "flat")
    with pytest.warns(DeprecationWarning):
        s = load_settings()
    assert (s.meta.deadline_s, s.meta.fallback) == (11.0, FallbackMode.FLAT)


def test_explicit_values_beat_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_META_DEADLINE_S", "11")
    with pytest.warns(DeprecationWarning):
        s = load_settings(meta=MetaSettings(deadline_s=5.0))
    assert s.meta.deadline_s == 5.0


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("BTCMETA_META__DEADLINE_S", "-1", "BTCMETA_META__DEADLINE_S"),
        ("BTCMETA_META_DECISION_TIMEFRAME", "7x", "BTCMETA_META__DECISION_TIMEFRAME"),
        ("BTCMETA_EXECUTOR__MODEL_CHECK", "maybe", "BTCMETA_EXECUTOR__MODEL_CHECK"),
        ("BTCMETA_BRIDGE_PORT", "70000", "BTCMETA_BRIDGE__PORT"),
    ],
)
def test_a_bad_value_under_either_name_stops_the_start_naming_the_new_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, named: str
) -> None:
    monkeypatch.setenv(var, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(SettingsError, match=named):
            load_settings()


def test_every_old_name_maps_to_a_field_of_its_group() -> None:
    """The grace covers each former variable: one per field, under the former prefix."""
    for group, (prefix, model) in LEGACY_GROUP_PREFIXES.items():
        assert prefix == f"BTCMETA_{group.upper()}_"
        for field in model.model_fields:
            assert new_env_name(group, field) == f"{prefix}_{field.upper()}"
