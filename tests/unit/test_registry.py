"""The strategy registry refuses every kind of bad entry, naming the entry and the reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from common.registry import REGISTRY_PATH, RegistryError, StrategySpec, load_registry, parse_registry
from common.timeframes import format_timeframe, parse_timeframe
from config import load_settings

EXPECTED_CLASSES = {
    "volatility_system": "strategy_consumers.strategies.volatility_system:VolatilitySystem",
    "supertrend": "strategy_consumers.strategies.supertrend:Supertrend",
    "fsupertrend": "strategy_consumers.strategies.fsupertrend:FSupertrend",
    "ott": "strategy_consumers.strategies.ott:OTT",
    "bband_rsi": "strategy_consumers.strategies.bband_rsi:BbandRsi",
    "ma_trend": "strategy_consumers.strategies.ma_trend:MaTrend",
    "vwap_reversion": "strategy_consumers.strategies.vwap_reversion:VwapReversion",
    "exchange_inflow": "strategy_consumers.strategies.exchange_inflow:ExchangeInflow",
    "exchange_reserves": "strategy_consumers.strategies.exchange_reserves:ExchangeReserves",
    "funding_extremes": "strategy_consumers.strategies.funding_extremes:FundingExtremes",
    "open_interest": "strategy_consumers.strategies.open_interest:OpenInterest",
    "news_attention": "strategy_consumers.strategies.news_attention:NewsAttention",
    "headline_sentiment": "strategy_consumers.strategies.headline_sentiment:HeadlineSentiment",
    "social_mentions": "strategy_consumers.strategies.social_mentions:SocialMentions",
}


class GoodStrategy:
    """Duck-typed stand-in: the real base class lives elsewhere and may not import yet."""

    def signals(self, frame: Any) -> Any:
        return frame

    def recommend(self, frame: Any) -> Any:
        return frame


class NoRecommend:
    def signals(self, frame: Any) -> Any:
        return frame

    recommend = "not callable"


GOOD = f"{__name__}:GoodStrategy"


def _entry(name: str = "ott", /, **overrides: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "class_path": GOOD,
        "timeframe": "1h",
        "lookback_hours": 720,
        "enabled": True,
        "version": "1.0.0",
        "params": {"period": 14},
    }
    entry.update(overrides)
    return entry


def _doc(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": "./schemas/strategies_registry.schema.json", "strategies": list(entries)}


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "strategies_registry.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _errors(tmp_path: Path, doc: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(RegistryError) as info:
        load_registry(_write(tmp_path, doc), **kwargs)
    assert isinstance(info.value, ValueError)
    return info.value.errors


# --------------------------------------------------------------------------- the real file


def test_repo_registry_loads_without_imports() -> None:
    registry = load_registry(max_lookback_hours=load_settings().max_lookback_hours, import_classes=False)
    assert {s.name: s.class_path for s in registry} == EXPECTED_CLASSES
    for spec in registry:
        assert spec.enabled
        assert spec.version == "1.0.0"
        assert spec.bars * spec.timeframe_minutes == spec.lookback_hours * 60
    assert registry.timeframes == ("1h", "4h", "1d")
    assert {s.name for s in registry if s.exogenous_inputs} == {
        "exchange_inflow",
        "exchange_reserves",
        "funding_extremes",
        "open_interest",
        "news_attention",
        "headline_sentiment",
        "social_mentions",
    }


def test_repo_registry_loads_with_imports() -> None:
    """Every class imports and reads exactly the exogenous series its entry declares."""
    registry = load_registry(max_lookback_hours=load_settings().max_lookback_hours)
    assert len(registry) == len(EXPECTED_CLASSES)


def test_declared_inputs_must_match_the_class(tmp_path: Path) -> None:
    exo = "strategy_consumers.strategies.funding_extremes:FundingExtremes"
    errors = _errors(
        tmp_path,
        _doc(
            _entry(
                "f",
                class_path=exo,
                timeframe="4h",
                lookback_hours=1600,
                params={},
                exogenous_inputs=["funding_binance_8h"],
            )
        ),
    )
    assert len(errors) == 1 and "exogenous_inputs ['funding_binance_8h'] differ" in errors[0]
    assert "funding_bitmex_8h" in errors[0]
    errors = _errors(tmp_path, _doc(_entry("g", exogenous_inputs=["news_headlines"])))
    assert len(errors) == 1 and "differ from what 'GoodStrategy' reads: []" in errors[0]
    errors = _errors(tmp_path, _doc(_entry("h", exogenous_inputs=["Bad-Name"])))
    assert len(errors) == 1 and "does not match" in errors[0]
    ok = load_registry(
        _write(
            tmp_path,
            _doc(
                _entry(
                    "f",
                    class_path=exo,
                    timeframe="4h",
                    lookback_hours=1600,
                    params={},
                    exogenous_inputs=["funding_bitmex_8h", "funding_binance_8h"],
                )
            ),
        )
    )
    assert ok.get("f").exogenous_inputs == ("funding_bitmex_8h", "funding_binance_8h")


def test_repo_registry_points_at_its_schema() -> None:
    doc = json.loads(REGISTRY_PATH.read_text())
    target = (REGISTRY_PATH.parent / doc["$schema"]).resolve()
    assert target.is_file()


def test_valid_file_loads_with_class_import(tmp_path: Path) -> None:
    doc = _doc(_entry("ott"), _entry("supertrend", timeframe="4h", lookback_hours=480, enabled=False))
    registry = load_registry(_write(tmp_path, doc), max_lookback_hours=720)
    assert registry.names == ("ott", "supertrend")
    ott = registry.get("ott")
    assert isinstance(ott, StrategySpec)
    assert ott.load_class() is GoodStrategy
    assert ott.params == {"period": 14}
    assert registry.get("supertrend").bars == 120
    assert registry.enabled == (ott,)
    assert registry.for_timeframe("1h") == (ott,)
    with pytest.raises(TypeError):
        ott.params["period"] = 3  # type: ignore[index]
    with pytest.raises(KeyError):
        registry.get("nope")


# --------------------------------------------------------------------------- bad entries


@pytest.mark.parametrize(
    "field", ["name", "class_path", "timeframe", "lookback_hours", "enabled", "version", "params"]
)
def test_missing_field(tmp_path: Path, field: str) -> None:
    entry = _entry("ott")
    del entry[field]
    errors = _errors(tmp_path, _doc(entry))
    label = "strategy 'ott'" if field != "name" else "strategy #0"
    assert any(label in e and f"missing field '{field}'" in e for e in errors), errors


def test_bad_timeframe_names_entry_and_value(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _doc(_entry("ott", timeframe="7x")))
    assert errors == [
        "strategies_registry.json: strategy 'ott': timeframe '7x' does not match ^[1-9][0-9]*[mhd]$"
    ]


def test_duplicate_name(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _doc(_entry("ott"), _entry("supertrend"), _entry("ott")))
    assert len(errors) == 1
    assert "strategy 'ott'" in errors[0] and "duplicate name" in errors[0]


def test_unknown_class_path(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        _doc(
            _entry("ott", class_path="no_such_pkg.mod:Thing"),
            _entry("supertrend", class_path=f"{__name__}:Missing"),
        ),
    )
    assert "strategy 'ott'" in errors[0] and "cannot be imported" in errors[0] and "no_such_pkg" in errors[0]
    assert "strategy 'supertrend'" in errors[1] and "no attribute 'Missing'" in errors[1]


def test_class_path_not_imported_when_disabled(tmp_path: Path) -> None:
    registry = load_registry(
        _write(tmp_path, _doc(_entry(class_path="no_such_pkg.mod:Thing"))), import_classes=False
    )
    assert registry.names == ("ott",)


def test_class_without_methods(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        _doc(
            _entry("ott", class_path=f"{__name__}:NoRecommend"),
            _entry("bband_rsi", class_path="json:JSONDecoder"),
        ),
    )
    assert "strategy 'ott'" in errors[0] and "no callable recommend" in errors[0]
    assert "strategy 'bband_rsi'" in errors[1] and "no callable signals, recommend" in errors[1]


def test_lookback_too_long(tmp_path: Path) -> None:
    doc = _doc(_entry("ott", lookback_hours=1000))
    assert load_registry(_write(tmp_path, doc)).get("ott").lookback_hours == 1000  # no limit given
    errors = _errors(tmp_path, doc, max_lookback_hours=720)
    assert errors == [
        "strategies_registry.json: strategy 'ott': lookback_hours 1000 exceeds max_lookback_hours 720"
    ]


def test_lookback_not_whole_bars(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _doc(_entry("ott", timeframe="7h", lookback_hours=720)))
    assert len(errors) == 1 and "strategy 'ott'" in errors[0] and "whole number of '7h' bars" in errors[0]


def test_extra_property(tmp_path: Path) -> None:
    errors = _errors(tmp_path, _doc(_entry("ott", colour="red")))
    assert errors == ["strategies_registry.json: strategy 'ott': unexpected field(s) 'colour'"]
    top = _doc(_entry("ott"))
    top["comment"] = "x"
    assert any("unexpected field(s) 'comment'" in e for e in _errors(tmp_path, top))


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"name": "Bad-Name"}, "name 'Bad-Name' does not match"),
        ({"version": "1.0"}, "version '1.0' does not match"),
        ({"lookback_hours": 0}, "lookback_hours"),
        ({"lookback_hours": 1.5}, "lookback_hours"),
        ({"enabled": "yes"}, "enabled"),
        ({"params": []}, "params"),
        ({"class_path": "no-colon"}, "class_path 'no-colon' does not match"),
    ],
)
def test_other_bad_values(tmp_path: Path, overrides: dict[str, Any], needle: str) -> None:
    errors = _errors(tmp_path, _doc(_entry("ott", **overrides)))
    assert any(needle in e for e in errors), errors


def test_all_errors_collected(tmp_path: Path) -> None:
    missing_version = _entry("fsupertrend")
    del missing_version["version"]
    doc = _doc(
        _entry("ott", timeframe="7x"),
        _entry("ott"),
        missing_version,
        _entry("bband_rsi", lookback_hours=9999),
        _entry("supertrend", class_path="nowhere:X"),
    )
    errors = _errors(tmp_path, doc, max_lookback_hours=720)
    assert len(errors) == 5, errors
    joined = "\n".join(errors)
    needles = (
        "timeframe '7x'",
        "duplicate name",
        "missing field 'version'",
        "exceeds max_lookback_hours",
        "cannot be imported",
    )
    for needle in needles:
        assert needle in joined
    assert all(e.startswith("strategies_registry.json: ") for e in errors)


def test_not_json_and_not_a_list(tmp_path: Path) -> None:
    path = tmp_path / "strategies_registry.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(RegistryError, match="not valid JSON"):
        load_registry(path)
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "absent.json")
    with pytest.raises(RegistryError, match="missing field 'strategies'"):
        parse_registry({})
    with pytest.raises(RegistryError, match="strategies"):
        parse_registry({"strategies": {"ott": {}}})


def test_registry_is_not_mutated_by_validation() -> None:
    doc = _doc(_entry("ott"))
    before = copy.deepcopy(doc)
    parse_registry(doc)
    assert doc == before


# --------------------------------------------------------------------------- timeframes


@pytest.mark.parametrize(
    ("text", "minutes"), [("1m", 1), ("15m", 15), ("1h", 60), ("4h", 240), ("1d", 1440), ("90m", 90)]
)
def test_parse_timeframe(text: str, minutes: int) -> None:
    assert parse_timeframe(text) == minutes
    assert parse_timeframe(format_timeframe(minutes)) == minutes


@pytest.mark.parametrize("text", ["", "0h", "01h", "1", "h", "1w", "1H", " 1h", "1h ", "1.5h", "-1h"])
def test_parse_timeframe_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("\\", "\\\\").replace(".", r"\.")):
        parse_timeframe(text)


def test_format_timeframe() -> None:
    got = [format_timeframe(m) for m in (1, 60, 240, 1440, 2880, 90)]
    assert got == ["1m", "1h", "4h", "1d", "2d", "90m"]
    with pytest.raises(ValueError):
        format_timeframe(0)
