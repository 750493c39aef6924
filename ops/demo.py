"""The main job: the bundled real data through the whole pipeline, paper trading, a report.

Every stage runs as its own process on the real broker and database, exactly as deployed: the
tick emitter replays the last ``days`` of the bundled Bitstamp hourly candles into a namespace of
its own, every registered strategy consumer answers (1h, 4h and 1d; the exogenous ones read the
shared series imported first), the meta consumer decides (the selected model, or the
documented majority-vote fallback when none is selected) and the executor trades the paper
venue on replayed time. Re-running deletes the previous demo namespace first, so the result is
the same every time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka.admin import AdminClient

from common.dataset import BUNDLED_CSV, load_bundled_candles
from common.db.session import make_engine
from common.kafka.configuration import admin_config
from common.kafka.topics import delete_topics_with_prefix
from common.logging import get_logger
from common.registry import load_registry
from config import Settings
from ops.pipeline import PipelineSpec, import_candles, import_exogenous, run_pipeline, settings_for
from ops.report import write_report
from ops.runs import delete_run, list_runs
from ops.supervisor import REPO

log = get_logger(__name__)
DEMO_ROOT = "demo."


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _cleanup_previous(settings: Settings, engine_url: str) -> None:
    """Delete every earlier demo run (rows, topics, consumer groups, run record)."""
    admin = AdminClient(admin_config(settings))
    engine = make_engine(engine_url)
    rows = topics = 0
    for run in [r.prefix for r in list_runs(engine, admin) if r.prefix.startswith(DEMO_ROOT)]:
        deleted_rows, deleted_topics, _groups = delete_run(engine, admin, run)
        rows, topics = rows + deleted_rows, topics + len(deleted_topics)
    topics += len(delete_topics_with_prefix(admin, DEMO_ROOT))  # runs that died before writing a row
    if rows or topics:
        say(f"removed the previous demo run ({topics} topics, {rows} rows)")


def run_demo(days: int, out: Path, timeout_s: float) -> Path:
    run_id = datetime.now(UTC).strftime("r%Y%m%dt%H%M%S")
    prefix = f"{DEMO_ROOT}{run_id}."
    settings = settings_for(prefix)
    url = settings.database_url.get_secret_value()
    registry = load_registry(settings.registry_path, max_lookback_hours=settings.max_lookback_hours)
    candles = load_bundled_candles()
    end = candles.index[-1].to_pydatetime() + timedelta(hours=1)  # the tick at which the last bar closes
    start = end - timedelta(days=days)

    say(f"importing the bundled real dataset ({len(candles):,} hourly candles) into Postgres")
    import_candles(BUNDLED_CSV)
    say("importing the shared exogenous series (funding, flows, open interest, news, social) into Postgres")
    import_exogenous()
    _cleanup_previous(settings, url)

    logs = out / "logs"
    say(f"namespace {prefix}  window {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({days} days)")
    say("starting: strategies, meta consumer (model or majority-vote fallback), executor (paper), replay")
    spec = PipelineSpec(
        prefix, start, end - timedelta(hours=1), logs, kind="demo", timeout_s=timeout_s, params={"days": days}
    )
    result = run_pipeline(spec, registry=registry, say=say)
    say(
        f"pipeline done in {result.seconds:.0f}s: "
        f"{result.decided:,} decisions, {result.executed:,} intents executed"
    )
    report = write_report(url, prefix, start, end, out, registry)
    say(f"report: {report}")
    return report


def main(days: int = 90, out: str = "out/demo", timeout_s: float = 1800.0) -> None:
    try:
        run_demo(days, REPO / out, timeout_s)
    except Exception as exc:
        say(f"FAILED: {exc}")
        raise SystemExit(1) from exc
