"""Which offset-commit failures the consume loop retries, absorbs, or lets crash the service.

The chaos suite (tests/integration/test_chaos_pipeline.py) found services dying on the first
commit after a frozen broker came back (coordinator load in progress) or after their group had
evicted them (unknown member). Retrying the first and absorbing the second keeps them running;
anything fatal must still stop the process rather than be papered over.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from common.kafka.consumer import _commit_error_kind


def _exc(code: int, *, fatal: bool = False, retriable: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, "test", fatal=fatal, retriable=retriable))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    ],
)
def test_busy_or_moving_coordinator_is_retried(code: int) -> None:
    assert _commit_error_kind(_exc(code)) == "retry"


@pytest.mark.parametrize(
    "code", [KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.REBALANCE_IN_PROGRESS]
)
def test_evicted_member_loses_the_commit(code: int) -> None:
    assert _commit_error_kind(_exc(code)) == "lost"


def test_fatal_and_unknown_errors_still_raise() -> None:
    assert _commit_error_kind(_exc(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, fatal=True)) == "fatal"
    assert _commit_error_kind(_exc(KafkaError.TOPIC_AUTHORIZATION_FAILED)) == "fatal"
    assert _commit_error_kind(_exc(KafkaError._FENCED)) == "fatal"
    assert _commit_error_kind(RuntimeError("not kafka")) == "fatal"


def test_a_retriable_flag_from_the_broker_is_honoured() -> None:
    assert _commit_error_kind(_exc(KafkaError.UNKNOWN_TOPIC_OR_PART, retriable=True)) == "retry"


def test_nothing_to_commit_is_not_an_error() -> None:
    assert _commit_error_kind(_exc(KafkaError._NO_OFFSET)) == "nothing"


def test_a_fenced_static_member_is_told_apart_from_other_fatal_errors() -> None:
    """librdkafka flags FENCED_INSTANCE_ID fatal; after a broker stall it is the client fencing
    its own previous member, which a fresh handle cures (the loop stops on a second fence)."""
    assert _commit_error_kind(_exc(KafkaError.FENCED_INSTANCE_ID, fatal=True)) == "fenced"


def test_a_bare_fatal_after_the_fence_is_the_fence_for_a_static_member_only() -> None:
    """When the fence was raised before the commit ran, the commit says only _FATAL; a static
    member's only fatal error is the fence, so it is cured the same way. Without static
    membership a bare _FATAL is not explained, and the service still stops."""
    assert _commit_error_kind(_exc(KafkaError._FATAL, fatal=True), static_member=True) == "fenced"
    assert _commit_error_kind(_exc(KafkaError._FATAL, fatal=True)) == "fatal"
    assert _commit_error_kind(_exc(KafkaError.TOPIC_AUTHORIZATION_FAILED), static_member=True) == "fatal"
