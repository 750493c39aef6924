"""The strategy registry: which strategies run, where their code is, how much history they need.

Loaded by the tick emitter (what is due, how many bars to send), the strategy runner (which class
to instantiate) and ops tooling (which bar topics exist). A broken registry must stop a deploy
with every problem listed at once, each naming the entry, rather than fail one pod at a time.
Structure is checked with the JSON Schema in ``schemas/strategies_registry.schema.json``;
what JSON Schema cannot express (unique names, lookback limits, importable classes) is checked here.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from common.timeframes import parse_timeframe

__all__ = [
    "REGISTRY_PATH",
    "REGISTRY_SCHEMA_PATH",
    "REQUIRED_METHODS",
    "Registry",
    "RegistryError",
    "StrategySpec",
    "import_class",
    "load_registry",
    "parse_registry",
]

_REPO = Path(__file__).resolve().parents[1]
REGISTRY_PATH = _REPO / "strategies_registry.json"
REGISTRY_SCHEMA_PATH = _REPO / "schemas" / "strategies_registry.schema.json"
#: What the runner calls on a strategy instance; checked by duck typing, not by base class.
REQUIRED_METHODS = ("signals", "recommend")


class RegistryError(ValueError):
    """The registry is unusable; ``errors`` lists every problem, one line each."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid strategy registry:\n  " + "\n  ".join(self.errors))


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """One registry entry, validated."""

    name: str
    class_path: str
    timeframe: str
    lookback_hours: int
    enabled: bool
    version: str
    params: Mapping[str, Any]
    #: Exogenous series the strategy reads (catalog names); the tick emitter attaches them to its bars.
    exogenous_inputs: tuple[str, ...] = ()

    @property
    def timeframe_minutes(self) -> int:
        """Bar length in minutes."""
        return parse_timeframe(self.timeframe)

    @property
    def bars(self) -> int:
        """Window length the tick emitter sends: lookback_hours * 60 / timeframe minutes."""
        return self.lookback_hours * 60 // self.timeframe_minutes

    def load_class(self) -> type:
        """Import the implementation (done lazily so tools without strategy deps can read the registry)."""
        return import_class(self.class_path)


@dataclass(frozen=True, slots=True)
class Registry:
    """All strategies of the registry, in file order."""

    strategies: tuple[StrategySpec, ...]
    source: str = "<memory>"

    def __iter__(self) -> Iterator[StrategySpec]:
        return iter(self.strategies)

    def __len__(self) -> int:
        return len(self.strategies)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strategies)

    @property
    def enabled(self) -> tuple[StrategySpec, ...]:
        """The strategies that run."""
        return tuple(s for s in self.strategies if s.enabled)

    @property
    def timeframes(self) -> tuple[str, ...]:
        """Distinct timeframes of enabled strategies, shortest first."""
        return tuple(sorted({s.timeframe for s in self.enabled}, key=lambda tf: (parse_timeframe(tf), tf)))

    def get(self, name: str) -> StrategySpec:
        for spec in self.strategies:
            if spec.name == name:
                return spec
        raise KeyError(f"no strategy {name!r} in registry {self.source}")

    def for_timeframe(self, timeframe: str) -> tuple[StrategySpec, ...]:
        """Enabled strategies on ``timeframe`` (those invoked when its bar closes)."""
        return tuple(s for s in self.enabled if s.timeframe == timeframe)


def import_class(class_path: str) -> type:
    """Resolve ``"package.module:Class"``; ImportError/AttributeError propagate with context."""
    module_name, sep, attr = class_path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"class_path {class_path!r} is not of the form 'module:Class'")
    module = importlib.import_module(module_name)
    try:
        found: type = getattr(module, attr)
    except AttributeError:
        raise AttributeError(f"module {module_name!r} has no attribute {attr!r}") from None
    return found


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(REGISTRY_SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _entry_label(doc: Any, index: int) -> str:
    entries = doc.get("strategies") if isinstance(doc, dict) else None
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"strategy {name!r}" if isinstance(name, str) and name else f"strategy #{index}"


def _describe(error: ValidationError) -> str:
    """A JSON Schema error in the words an operator editing the file needs."""
    path = list(error.absolute_path)
    field = str(path[-1]) if path and isinstance(path[-1], str) else None
    if error.validator == "pattern":
        return f"{field or 'value'} {error.instance!r} does not match {error.validator_value}"
    if error.validator == "required":
        match = re.match(r"^'(.+)' is a required property$", error.message)
        return f"missing field {match.group(1)!r}" if match else error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extra = sorted(k for k in error.instance if k not in allowed)
        return f"unexpected field(s) {', '.join(repr(k) for k in extra)}"
    return f"{field}: {error.message}" if field else error.message


def _sort_key(error: ValidationError) -> tuple[tuple[int, Any], ...]:
    return tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path)


def parse_registry(
    doc: Any,
    *,
    source: str = "<memory>",
    max_lookback_hours: int | None = None,
    import_classes: bool = True,
) -> Registry:
    """Validate an already-parsed registry document; see load_registry."""
    errors: list[str] = []
    bad_entries: set[int] = set()
    for error in sorted(_validator().iter_errors(doc), key=_sort_key):
        path = list(error.absolute_path)
        if len(path) >= 2 and path[0] == "strategies" and isinstance(path[1], int):
            bad_entries.add(path[1])
            errors.append(f"{source}: {_entry_label(doc, path[1])}: {_describe(error)}")
        else:
            errors.append(f"{source}: {_describe(error)}")

    raw_entries = doc.get("strategies") if isinstance(doc, dict) else None
    entries = raw_entries if isinstance(raw_entries, list) else []
    specs: list[StrategySpec] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = f"{source}: {_entry_label(doc, index)}"
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in first_index:
                errors.append(f"{label}: duplicate name (first defined as entry #{first_index[name]})")
            else:
                first_index[name] = index
        if index in bad_entries:
            continue
        spec = StrategySpec(
            name=entry["name"],
            class_path=entry["class_path"],
            timeframe=entry["timeframe"],
            lookback_hours=entry["lookback_hours"],
            enabled=entry["enabled"],
            version=entry["version"],
            params=MappingProxyType(dict(entry["params"])),
            exogenous_inputs=tuple(entry.get("exogenous_inputs", ())),
        )
        errors.extend(f"{label}: {problem}" for problem in _semantic_problems(spec, max_lookback_hours))
        if import_classes:
            errors.extend(f"{label}: {problem}" for problem in _class_problems(spec))
        specs.append(spec)

    if errors:
        raise RegistryError(errors)
    return Registry(strategies=tuple(specs), source=source)


def _semantic_problems(spec: StrategySpec, max_lookback_hours: int | None) -> list[str]:
    problems: list[str] = []
    if max_lookback_hours is not None and spec.lookback_hours > max_lookback_hours:
        problems.append(
            f"lookback_hours {spec.lookback_hours} exceeds max_lookback_hours {max_lookback_hours}"
        )
    minutes = parse_timeframe(spec.timeframe)  # the schema pattern already guarantees the format
    if (spec.lookback_hours * 60) % minutes:
        problems.append(
            f"lookback_hours {spec.lookback_hours} ({spec.lookback_hours * 60} min) is not a whole number "
            f"of {spec.timeframe!r} bars ({minutes} min)"
        )
    return problems


def _class_problems(spec: StrategySpec) -> list[str]:
    class_path = spec.class_path
    try:
        cls = import_class(class_path)
    except Exception as exc:  # any import-time failure is a registry problem to report, not a crash
        return [f"class_path {class_path!r} cannot be imported: {type(exc).__name__}: {exc}"]
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        return [
            f"class_path {class_path!r}: {getattr(cls, '__name__', cls)!r} has no callable "
            f"{', '.join(missing)}"
        ]
    # The entry is what the emitter reads; the class is what the strategy uses. They must agree, or
    # the strategy would get no data for an input (and say "no opinion" forever) without anyone noticing.
    declared = tuple(getattr(cls, "exogenous_inputs", None) or ())
    if sorted(declared) != sorted(spec.exogenous_inputs):
        return [
            f"exogenous_inputs {sorted(spec.exogenous_inputs)} differ from what "
            f"{getattr(cls, '__name__', cls)!r} reads: {sorted(declared)}"
        ]
    return []


def load_registry(
    path: Path | str | None = None,
    *,
    max_lookback_hours: int | None = None,
    import_classes: bool = True,
) -> Registry:
    """Read and validate the registry file (default: ``strategies_registry.json`` at the repo root).

    ``max_lookback_hours`` is the history the candle store keeps; a strategy asking for more could
    never be served. ``import_classes=False`` is for tools that only need names and timeframes and
    must not import strategy code (ops, the tick emitter).
    Raises RegistryError listing every problem, each prefixed with the file name and the entry.
    """
    file = Path(path) if path is not None else REGISTRY_PATH
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError([f"{file.name}: cannot read: {exc}"]) from exc
    except ValueError as exc:
        raise RegistryError([f"{file.name}: not valid JSON: {exc}"]) from exc
    return parse_registry(
        doc, source=file.name, max_lookback_hours=max_lookback_hours, import_classes=import_classes
    )
