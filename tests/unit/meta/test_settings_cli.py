"""Meta settings from the environment and the CLI's refusal of bad input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from config import FallbackMode, SettingsError, load_settings
from meta_consumer.cli import app


def test_meta_settings_are_the_meta_group_of_the_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTCMETA_META__DEADLINE_S", "12.5")
    monkeypatch.setenv("BTCMETA_META__FALLBACK", "flat")
    monkeypatch.setenv("BTCMETA_META__ALLOW_SUBSET", "true")
    meta = load_settings().meta
    assert (meta.deadline_s, meta.fallback, meta.allow_subset) == (12.5, FallbackMode.FLAT, True)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BTCMETA_META__FALLBACK", "coinflip"),
        ("BTCMETA_META__DEADLINE_S", "-1"),
        ("BTCMETA_META__DECISION_TIMEFRAME", "7x"),
    ],
)
def test_bad_meta_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_cli_help_and_usage_on_bad_arguments() -> None:
    runner = CliRunner()
    assert "run" in runner.invoke(app, ["--help"]).output
    bad = runner.invoke(app, ["run", "--no-such-option"])
    assert bad.exit_code == 2 and "Usage" in bad.output
