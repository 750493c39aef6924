"""Research configuration -> live combiner artefact (``common.combiner``), optionally a ``models`` row.

``python -m training export-combiner 'volmanaged:{"target_vol":0.5,"window":168}'`` takes a
configuration by its trial-log key (what REPORT.md and ``trials.jsonl`` name it), writes the
artefact and, with ``--register``, stores it in the live ``models`` table **unselected**: selecting
stays the operator's act (``UPDATE models SET selected``, or the gates' outcome), as for trained
models. Families that are online rules with no fitted state export exactly the research path
(``volmanaged``); fitted families (ridge/logistic, ...) are not exportable yet (ADR 0020).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common.combiner import export_combiner, load_combiner
from training.research.candidates import GRID, Config

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXPORTABLE = ("volmanaged",)


class ExportError(ValueError):
    """The configuration cannot become a live combiner (unknown key, family not exportable)."""


@dataclass(frozen=True)
class Exported:
    model_id: str
    artifact: bytes
    sha256: str
    fingerprint: str
    registered: bool


def parse_key(key: str) -> Config:
    """``family:{json params}`` (``Config.key``) back to the configuration."""
    family, sep, params = key.partition(":")
    try:
        doc = json.loads(params) if sep else None
    except json.JSONDecodeError as exc:
        raise ExportError(f"{key!r}: params are not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ExportError(
            f'{key!r}: expected FAMILY:{{json params}}, e.g. volmanaged:{{"target_vol":0.5,"window":168}}'
        )
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in doc.values()):
        raise ExportError(f"{key!r}: every parameter must be a number")
    return Config(family, doc)  # numbers as written: the key round-trips to the trial log's


def combiner_artifact(config: Config, strategies: Sequence[str], provenance: Mapping[str, Any]) -> bytes:
    """The artefact that decides live what ``candidates.exposure(config, ...)`` scored."""
    if config.family not in EXPORTABLE:
        raise ExportError(
            f"{config.family!r} is not exportable yet (exportable: {', '.join(EXPORTABLE)}); see ADR 0020"
        )
    p = dict(config.params)
    if not {"target_vol", "window"} <= set(p) or set(p) - {"target_vol", "window", "cap"}:
        raise ExportError(
            f"{config.key}: volmanaged takes target_vol, window (and cap), got {sorted(config.params)}"
        )
    params = {
        "target_vol": float(p["target_vol"]),
        "window": float(p["window"]),
        "cap": float(p.get("cap", 1.0)),
    }
    try:
        return export_combiner(
            "volmanaged", strategies, params, grid=GRID, provenance={"config": config.key, **provenance}
        )
    except ValueError as exc:
        raise ExportError(str(exc)) from None


def register(engine: Engine, model_id: str, artifact: bytes, config: Config) -> bool:
    """Insert the artefact as an unselected ``models`` row; False if the same artefact is there.

    A row with this id and another artefact is refused (an id names one artefact forever).
    """
    from common.db.ml import ModelConflict, add_model
    from common.db.session import session_scope
    from common.observation import FeatureSpec

    comb = load_combiner(_Row(model_id, artifact))  # what the meta consumer will check
    try:
        with session_scope(engine) as s:
            return add_model(
                s,
                model_id=model_id,
                algo=f"combiner:{comb.kind}",
                artifact=artifact,
                feature_spec=json.loads(FeatureSpec(strategies=comb.strategies).to_json()),
                strategy_set=list(comb.strategies),
                params={"config": config.key, "fingerprint": comb.fingerprint, **comb.params},
            )
    except ModelConflict as exc:
        raise ExportError(f"{exc}; choose another --model-id") from None


def export(
    key: str,
    strategies: Sequence[str],
    *,
    model_id: str | None = None,
    engine: Engine | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Exported:
    """Artefact for ``key`` over ``strategies``; registered (unselected) when ``engine`` is given."""
    config = parse_key(key)
    art = combiner_artifact(config, strategies, provenance or {})
    fp = json.loads(art)["fingerprint"]
    mid = model_id or f"combiner-{config.family}-{fp[:12]}"
    registered = register(engine, mid, art, config) if engine is not None else False
    return Exported(mid, art, _sha(art), fp, registered)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class _Row:
    model_id: str
    artifact: bytes
    artifact_sha256: str = ""
    feature_spec: dict[str, Any] = field(default_factory=dict)
