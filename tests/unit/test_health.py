"""common.health: liveness follows the main loop, readiness its dependencies, both without a restart.

A fake clock drives every verdict, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from common.health import LIVE_PATH, READY_PATH, Health, Verdict, wait_until_ready


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def _health() -> tuple[Health, FakeClock]:
    clock = FakeClock()
    return Health(live_within_s=60.0, ready_within_s=10.0, clock=clock), clock


def test_not_live_before_the_first_beat_and_after_the_loop_stops() -> None:
    health, clock = _health()
    assert not health.live().ok
    health.beat()
    assert health.live().ok
    clock.t += 59.0
    assert health.live().ok
    clock.t += 2.0  # a wedged loop: the beats stopped
    verdict = health.live()
    assert not verdict.ok and verdict.detail["loop_age_s"] == 61.0
    health.beat()  # the loop turned again: live again, nothing to reset
    assert health.live().ok


def test_ready_needs_every_expected_dependency_to_have_answered() -> None:
    health, _clock = _health()
    health.expect("postgres")
    health.expect("kafka")
    health.beat()
    assert not health.ready().ok  # declared, never answered: starting up, not ready
    health.mark_ok("postgres")
    assert not health.ready().ok
    health.mark_ok("kafka")
    assert health.ready().ok


def test_outage_turns_readiness_red_and_recovery_green_without_restart() -> None:
    health, clock = _health()
    health.beat()
    health.mark_ok("postgres")
    health.mark_ok("kafka")
    assert health.ready().ok
    # A failed probe is red at once, with the reason.
    health.mark_failed("kafka", "KafkaException: timed out")
    verdict = health.ready()
    assert not verdict.ok
    assert verdict.detail["dependencies"]["kafka"]["error"] == "KafkaException: timed out"
    assert verdict.detail["dependencies"]["postgres"]["ok"] is True
    health.mark_ok("kafka")
    assert health.ready().ok
    # A hung probe (a frozen server never answers) is red by age alone.
    clock.t += 11.0
    health.beat()
    health.mark_ok("kafka")
    verdict = health.ready()
    assert not verdict.ok and verdict.detail["dependencies"]["postgres"]["ok"] is False
    health.mark_ok("postgres")
    assert health.ready().ok


def test_not_ready_when_not_live_even_with_healthy_dependencies() -> None:
    health, clock = _health()
    health.beat()
    health.mark_ok("postgres")
    clock.t += 61.0
    health.mark_ok("postgres")
    assert not health.ready().ok and health.ready().detail["live"] is False


def _get(app: Any, path: str) -> tuple[str, bytes]:
    seen: dict[str, str] = {}

    def start_response(status: str, _headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body: Iterable[bytes] = app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response)
    return seen["status"], b"".join(body)


def test_http_answers_200_or_503_and_passes_other_paths_to_metrics() -> None:
    health, _clock = _health()
    health.expect("postgres")

    def metrics(_environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"btcmeta_metric 1\n"]

    app = health.wsgi_app(metrics)
    status, body = _get(app, LIVE_PATH)
    assert status.startswith("503") and json.loads(body)["status"] == "fail"
    health.beat()
    assert _get(app, LIVE_PATH)[0].startswith("200")
    status, body = _get(app, READY_PATH)
    assert status.startswith("503")
    assert json.loads(body)["dependencies"]["postgres"] == {"ok": False, "age_s": None, "error": None}
    health.mark_ok("postgres")
    status, body = _get(app, READY_PATH)
    assert status.startswith("200") and json.loads(body)["status"] == "ok"
    assert _get(app, "/metrics") == ("200 OK", b"btcmeta_metric 1\n")


def test_a_service_started_during_an_outage_waits_alive_until_its_dependencies_answer() -> None:
    """wait_until_ready beats (live) and returns only once readiness is green: a service started
    while Postgres is down waits instead of failing its first query and crash-looping."""
    _unused, clock = _health()
    looks: list[bool] = []

    class Flaky(Health):
        def ready(self) -> Verdict:
            looks.append(True)
            if len(looks) >= 3:  # the probe answers on the third look
                self.mark_ok("postgres")
            verdict = super().ready()
            assert self.live().ok  # alive all along: Kubernetes must not restart it meanwhile
            return verdict

    flaky = Flaky(live_within_s=60.0, ready_within_s=10.0, clock=clock)
    flaky.expect("postgres")
    wait_until_ready(flaky, poll_s=0.0)
    assert len(looks) == 3  # returned at the first green answer, not before
