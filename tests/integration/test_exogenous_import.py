"""``producers exogenous import`` against the real PostgreSQL: complete, idempotent, incremental, exact."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner, Result

from common.db import migrate
from common.db.session import make_engine
from common.exogenous import TIME_SERIES, get_series
from common.exogenous.files import load_series
from common.exogenous.models import ExogenousObservation, ExogenousSeries
from common.exogenous.store import count_rows, read_series
from config import get_settings
from producers.cli import app
from producers.exogenous import import_dir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "exogenous"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(empty_database_url: str):
    migrate.upgrade(empty_database_url)
    engine = make_engine(empty_database_url)
    yield empty_database_url, engine
    engine.dispose()


@pytest.fixture
def cli(db: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``python -m producers exogenous ...`` in this process (a subprocess pays ~15 s of imports)."""
    monkeypatch.setenv("BTCMETA_DATABASE_URL", db[0])
    monkeypatch.setenv("BTCMETA_LOG_JSON", "true")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, ["exogenous", *args])
    get_settings.cache_clear()


def test_import_everything_twice_the_second_run_adds_nothing(db: tuple[str, Engine]) -> None:
    _, engine = db
    manifest = pd.read_csv(DATA / "manifest.csv").set_index("file")
    first = {r.series: r for r in import_dir(engine, DATA, now=NOW)}
    assert set(first) == set(TIME_SERIES)
    for name, report in first.items():
        rows = int(manifest.loc[get_series(name).file, "rows"])
        refused = sum(report.rejected.values())
        assert report.error is None and report.rows_read == rows
        assert report.inserted == report.taken == rows - refused, report.line()
        assert count_rows(engine, name) == report.taken
    assert first["sopr"].rejected == {"empty_value": 2}
    assert first["funding_aggregate_daily"].rejected == {"empty_value": 2}

    second = import_dir(engine, DATA, now=NOW)
    assert all(r.inserted == 0 and r.unchanged == r.taken for r in second), [r.line() for r in second]
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM exogenous_observations")).scalar_one()
    assert total == sum(r.taken for r in first.values())

    # the catalog rows went in with the units and rules the code states
    with engine.connect() as conn:
        fed = conn.execute(select(ExogenousSeries).where(ExogenousSeries.name == "fed_funds_rate")).one()
    assert fed.units == {"fed_funds_effective_rate_pct": "% p.a."}
    assert fed.publication_rule.startswith("next US business day") and fed.value_column == (
        "fed_funds_effective_rate_pct"
    )

    # values come back exactly as the file wrote them, with both times
    with engine.connect() as conn:
        value, published = conn.execute(
            select(ExogenousObservation.value, ExogenousObservation.published_at).where(
                ExogenousObservation.series == "funding_binance_8h",
                ExogenousObservation.about_ts == datetime(2020, 3, 12, 8, tzinfo=UTC),
            )
        ).one()
    literal = next(
        line
        for line in (DATA / "funding_binance_btcusdt_8h.csv").read_text().splitlines()
        if line.startswith("2020-03-12T08:00:00Z")
    )
    assert value == float(literal.split(",")[1])
    assert published == datetime(2020, 3, 12, 8, tzinfo=UTC)
    with engine.connect() as conn:
        mvrv_published = conn.execute(
            select(ExogenousObservation.published_at).where(
                ExogenousObservation.series == "mvrv",
                ExogenousObservation.about_ts == datetime(2020, 3, 12, tzinfo=UTC),
            )
        ).scalar_one()
    assert mvrv_published == datetime(2020, 3, 13, tzinfo=UTC)  # daily: known the next day

    compared = (
        "funding_bitmex_8h",
        "fear_greed",
        "social_sentiment",
        "news_headlines",
        "news_events",
        "mvrv",
    )
    for name in compared:
        from_file = load_series(DATA, name, now=NOW).frame
        from_db = read_series(engine, name)
        if get_series(name).is_event:  # items sharing (published_at, about_ts) come back by item key
            key = ["published_at", "about_ts", *get_series(name).value_columns]
            from_file = from_file.sort_values(key, ignore_index=True)
            from_db = from_db.sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(from_db, from_file, check_exact=True, obj=name)
    cut = read_series(engine, "mvrv", published_until=datetime(2020, 3, 12, 23, 59, tzinfo=UTC))
    assert cut["about_ts"].max() == pd.Timestamp("2020-03-11", tz="UTC")


def _copy_with(tmp_path: Path, name: str, keep: int, extra: str = "") -> Path:
    lines = (DATA / get_series(name).file).read_text().splitlines(keepends=True)
    (tmp_path / get_series(name).file).write_text("".join(lines[: 1 + keep]) + extra)
    return tmp_path


def test_cli_incremental_import_with_bad_rows(
    db: tuple[str, Engine], cli: Callable[..., Result], tmp_path: Path
) -> None:
    _, engine = db
    bad = (
        "2099-01-01T00:00:00Z,2.0\n"  # future
        "2012-01-01T00:00:00Z,2.0\n"  # out of order
        "2012-04-05T00:00:00Z,nan\n"  # non-finite
        "2012-04-06T00:00:00Z,\n"  # empty
        "2012-04-07T00:00:00Z,1.2.3\n"
    )  # bad format
    folder = _copy_with(tmp_path, "exchange_reserves", 3, bad)
    done = cli("import", "--dir", str(folder), "--series", "exchange_reserves")
    assert done.exit_code == 0, done.output
    line = next(x for x in done.stdout.splitlines() if x.startswith("exchange_reserves:"))
    assert "read=8 taken=3 inserted=3 unchanged=0 rejected=5" in line
    for reason in ("future", "out_of_order", "non_finite", "empty_value", "bad_format"):
        assert f"rejected[{reason}]=1" in line
    assert '"reason": "future"' in done.stderr  # each refusal is logged with its reason

    # the full file later: only what is new goes in
    folder = _copy_with(tmp_path, "exchange_reserves", 4615)
    done = cli("import", "--dir", str(folder), "--series", "exchange_reserves")
    assert done.exit_code == 0, done.output
    assert "read=4615 taken=4615 inserted=4612 unchanged=3 rejected=0" in done.stdout
    assert count_rows(engine, "exchange_reserves") == 4615
    done = cli("import", "--dir", str(folder), "--series", "exchange_reserves")
    assert "inserted=0 unchanged=4615" in done.stdout


def test_a_changed_history_is_refused_not_overwritten(db: tuple[str, Engine], tmp_path: Path) -> None:
    _, engine = db
    name = "open_interest_daily"
    folder = _copy_with(tmp_path, name, 5)
    assert import_dir(engine, folder, [name], now=NOW)[0].inserted == 5
    path = folder / get_series(name).file
    lines = path.read_text().splitlines()
    ts, original = lines[3].split(",")
    lines[3] = f"{ts},{int(original) + 1}"
    path.write_text("\n".join(lines) + "\n")
    report = import_dir(engine, folder, [name], now=NOW)[0]
    assert report.rejected == {"conflicts_with_stored": 1} and report.inserted == 0
    assert report.unchanged == 4
    stored = read_series(engine, name)
    assert stored.loc[stored["about_ts"] == pd.Timestamp(ts), "open_interest_usd"].iloc[0] == float(original)


def test_cli_usage_errors(db: tuple[str, Engine], cli: Callable[..., Result], tmp_path: Path) -> None:
    url, _ = db
    done = cli("import", "--dir", str(DATA), "--series", "no_such_series")
    assert done.exit_code == 2 and "Usage:" in done.output and "fear_greed" in done.output
    done = cli("import", "--dir", str(tmp_path / "missing"))
    assert done.exit_code == 2 and "Usage:" in done.output
    done = cli("poll", "--source", "twitter")
    assert done.exit_code == 2 and "unknown source" in done.output
    # a folder without the file: one clear error line per series, exit 1, nothing else breaks
    done = cli("import", "--dir", str(tmp_path), "--series", "mvrv")
    assert done.exit_code == 1 and "mvrv: ERROR mvrv: file not found" in done.stderr
    # the real entry point, once: a bad option prints the usage
    real = subprocess.run(
        [sys.executable, "-m", "producers", "exogenous", "import", "--bogus"],
        cwd=REPO,
        env={**os.environ, "BTCMETA_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert real.returncode == 2 and "Usage: python -m producers exogenous import" in real.stderr
    assert "No such option" in real.stderr
