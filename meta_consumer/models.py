"""Which policy decides: the selected row of ``models``, re-checked between ticks, or a fallback.

Hot reload is a poll of (model_id, artifact_sha256) of the selected row: one indexed query, cheap
enough to run before every tick, so a new selection takes effect at the very next tick and no tick
goes undecided while it loads (loading happens inside the decider, between two ticks).
A model that cannot run (bad artifact, or a strategy set other than the registry's without
``allow_subset``) is refused loudly and the fallback decides, with the reason in every decision.
A row holds either an MLP policy (``common.policy``, an ``.npz``) or a research combiner
(``common.combiner``, canonical JSON; ADR 0020, the RL recast's included: ADR 0027): the
artefact's first byte tells which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from common.combiner import Combiner, CombinerError, is_combiner_artifact, load_combiner
from common.logging import get_logger
from common.observation import FeatureSpec
from common.policy import Policy, PolicyError, load_policy
from config import MetaSettings
from meta_consumer import store
from meta_consumer.decide import BAR_CLOSES, Choice

log = get_logger(__name__)


def fallback_id(meta: MetaSettings) -> str:
    return f"fallback:{meta.fallback.value}"


class ModelManager:
    def __init__(
        self,
        engine: Engine,
        meta: MetaSettings,
        live: Sequence[str],
        *,
        step: float,
        max_exposure: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._meta = meta
        self._live = tuple(live)
        self._step = step
        self._max = max_exposure
        self._clock = clock
        self._key: tuple[str, str] | None = None
        self._checked_at: float | None = None
        self._choice = self._fallback("no model selected")

    def _fallback(self, reason: str, retrain: bool = False) -> Choice:
        return Choice(
            fallback_id(self._meta),
            FeatureSpec(strategies=self._live),
            None,
            self._meta.fallback,
            reason,
            retrain,
        )

    def current(self, db: store.Db | None = None) -> Choice:
        """The policy for the next tick; ``db``: where the poll runs (the decider passes the cursor
        of its decision transaction), else the engine."""
        now = self._clock()
        if self._checked_at is None or now - self._checked_at >= self._meta.model_poll_s:
            bind = self._engine if db is None else db
            key = (
                store.model_key(bind, self._meta.model_id)
                if self._meta.model_id
                else store.selected_model_key(bind)
            )
            # After the poll answered: a poll lost to a dropped connection is re-run on the retry.
            self._checked_at = now
            if key != self._key:
                self._choice = self._build(key)
                self._key = key
        return self._choice

    def _build(self, key: tuple[str, str] | None) -> Choice:
        if key is None:
            log.warning("no_model_selected", fallback=self._meta.fallback.value)
            return self._fallback("no model selected")
        row = store.load_model(self._engine, key[0])
        if row is None:  # unselected between the two queries: the next poll sees the new state
            return self._fallback("no model selected")
        policy: Policy | None = None
        combiner: Combiner | None = None
        try:
            if is_combiner_artifact(row.artifact):
                combiner = load_combiner(row, step=self._step, max_exposure=self._max, max_closes=BAR_CLOSES)
                spec = FeatureSpec(strategies=combiner.strategies)
                output = f"combiner:{combiner.kind}"
            else:
                policy = load_policy(row, step=self._step, max_exposure=self._max)
                spec, output = policy.spec, policy.output
        except (PolicyError, CombinerError) as exc:
            log.error("model_refused", model_id=row.model_id, reason=str(exc))
            return self._fallback(f"model {row.model_id} unusable: {exc}")
        missing, extra = spec.missing_from(self._live)
        if not missing and not extra:
            log.info("model_loaded", model_id=row.model_id, algo=row.algo, output=output)
            return Choice(row.model_id, spec, policy, self._meta.fallback, combiner=combiner)
        detail = f"strategy set differs from the registry (missing {missing}, not in model {extra})"
        if self._meta.allow_subset:
            log.warning(
                "model_strategy_mismatch_subset",
                model_id=row.model_id,
                missing=missing,
                extra=extra,
                retrain_needed=True,
            )
            return Choice(
                row.model_id,
                spec,
                policy,
                self._meta.fallback,
                f"{detail}: run on its own subset; retrain needed",
                True,
                combiner,
            )
        log.warning(
            "model_strategy_mismatch_refused",
            model_id=row.model_id,
            missing=missing,
            extra=extra,
            retrain_needed=True,
        )
        return self._fallback(f"model {row.model_id} refused: {detail}; retrain needed", True)
