"""Avro single-object encoding for every message on the bus.

Wire format (Avro spec, "Single object encoding"): ``C3 01`` magic, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the schemaless Avro
binary body. The fingerprint lets a reader find the exact writer schema without a registry
service; decoding resolves that writer schema to the current reader schema, so messages written
by an older service version (kept in ``schemas/avro/history/``) still decode.

A fingerprint this process does not ship (a NEWER service version wrote it, mid rolling deploy)
raises :class:`UnknownSchema`. The consume loop then asks the schema store (every producer
registers its schemas there, ``common/schema_store.py``) and teaches the writer schema to this
process with :func:`learn_schema`; see docs/decisions/0014-unknown-schema-fingerprints.md.

The ``.avsc`` files are the source of truth: they are read from disk once, parsed once, and every
encode/decode after that is a dict lookup plus fastavro's compiled reader/writer.
Any failure to decode raises ``SerdeError`` (a ValueError), never a stray exception type, so a
consumer can route every bad message to the dead-letter topic with one ``except``.

This codec is schema-driven and has no per-message code. BarClosed, the one message on the
latency path, also has array-level twins (the emitter's encoder, the consumers' decoder) in
``common.serde_bars``, the one BarClosed wire module; they are checked byte for byte against this
codec, which stays the reference for every message type.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar, overload

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from common.events import Event, event_type_for

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "SCHEMA_DIR",
    "SchemaSet",
    "SchemaVersion",
    "SerdeError",
    "UnknownSchema",
    "decode",
    "decode_raw",
    "encode",
    "encode_raw",
    "fingerprint_of",
    "learn_schema",
    "learned_schemas",
    "load_schema_set",
    "parse_header",
    "schema_fingerprint",
    "shipped_schemas",
]

#: Folder holding the current ``<Name>.avsc`` files and ``history/<Name>/v<k>.avsc``.
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "avro"
MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
NAMESPACE = "btcmeta"

_VERSION_RE = re.compile(r"^v([1-9][0-9]*)\.avsc$")
T = TypeVar("T", bound=Event)


class SerdeError(ValueError):
    """A message that cannot be encoded or decoded; the text says why (for the dead-letter record)."""


class UnknownSchema(SerdeError):
    """The writer schema is not one this process can read YET: not shipped, not learned, or learned
    but not resolvable to this version's reader schema (e.g. a newer enum symbol without default).

    Not the message's fault: a newer service version wrote it. Consumers that must not lose
    messages wait (and re-read the schema store) instead of dead-lettering; see ConsumerLoop.
    """

    def __init__(self, message: str, fingerprint: bytes) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


def schema_fingerprint(schema: dict[str, Any] | str | list[Any]) -> bytes:
    """CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form, as the 8 wire bytes.

    fastavro returns the little-endian bytes as hex, which is exactly the wire order.
    """
    canonical = to_parsing_canonical_form(schema)
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One schema file: the current contract (version None) or a kept historical version."""

    name: str
    version: int | None
    path: Path
    raw: dict[str, Any]
    parsed: Any
    canonical: str
    fingerprint: bytes
    #: False for a writer schema learned at run time from the schema store (not in this build).
    shipped: bool = True

    @property
    def label(self) -> str:
        """Human-readable version for messages."""
        if not self.shipped:
            return f"{self.name} (schema store {self.fingerprint.hex()})"
        return f"{self.name} {'current' if self.version is None else f'v{self.version}'}"


def _load_file(path: Path, version: int | None) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SerdeError(f"{path}: cannot read schema: {exc}") from exc
    return _from_raw(raw, path, version)


def _from_raw(raw: Any, path: Path, version: int | None, *, shipped: bool = True) -> SchemaVersion:
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SerdeError(f"{path}: top-level schema must be a record")
    if raw.get("namespace") != NAMESPACE:
        raise SerdeError(f"{path}: namespace must be {NAMESPACE!r}, got {raw.get('namespace')!r}")
    name = f"{NAMESPACE}.{raw.get('name')}"
    try:
        # A fresh named-types table per file: historical versions reuse the same names.
        parsed = parse_schema(raw, named_schemas={})
    except Exception as exc:
        raise SerdeError(f"{path}: invalid Avro schema: {exc}") from exc
    return SchemaVersion(
        name=name,
        version=version,
        path=path,
        raw=raw,
        parsed=parsed,
        canonical=to_parsing_canonical_form(raw),
        fingerprint=schema_fingerprint(raw),
        shipped=shipped,
    )


class SchemaSet:
    """All current schemas plus every kept historical version, indexed by name and fingerprint."""

    def __init__(self, directory: Path | str = SCHEMA_DIR) -> None:
        self.directory = Path(directory)
        self.current: dict[str, SchemaVersion] = {}
        self.history: dict[str, list[SchemaVersion]] = {}
        self.by_fingerprint: dict[bytes, SchemaVersion] = {}
        for path in sorted(self.directory.glob("*.avsc")):
            sv = _load_file(path, None)
            if sv.name != f"{NAMESPACE}.{path.stem}":
                raise SerdeError(f"{path}: file name must match the record name {sv.name!r}")
            self.current[sv.name] = sv
            self._index(sv)
        if not self.current:
            raise SerdeError(f"{self.directory}: no .avsc schemas found")
        history_dir = self.directory / "history"
        for folder in sorted(p for p in history_dir.glob("*") if p.is_dir()):
            versions: list[SchemaVersion] = []
            for path in sorted(folder.glob("*.avsc")):
                match = _VERSION_RE.match(path.name)
                if match is None:
                    raise SerdeError(f"{path}: historical schema files must be named v<k>.avsc")
                sv = _load_file(path, int(match.group(1)))
                if sv.name != f"{NAMESPACE}.{folder.name}":
                    raise SerdeError(f"{path}: record name {sv.name!r} does not match its folder")
                versions.append(sv)
            versions.sort(key=lambda v: v.version or 0)
            self.history[f"{NAMESPACE}.{folder.name}"] = versions
            for sv in versions:
                # Current wins for a shared fingerprint: decoding then needs no resolution step.
                if sv.fingerprint not in self.by_fingerprint:
                    self._index(sv)

    def _index(self, sv: SchemaVersion) -> None:
        other = self.by_fingerprint.get(sv.fingerprint)
        if other is not None and other.name != sv.name:
            raise SerdeError(f"fingerprint collision between {other.path} and {sv.path}")
        self.by_fingerprint.setdefault(sv.fingerprint, sv)

    def get(self, name: str, version: int | None = None) -> SchemaVersion:
        """The current schema for ``name`` or its historical ``v<version>``."""
        if name not in self.current:
            raise SerdeError(f"unknown schema {name!r}; known: {', '.join(sorted(self.current))}")
        if version is None:
            return self.current[name]
        for sv in self.history.get(name, []):
            if sv.version == version:
                return sv
        raise SerdeError(f"no kept version v{version} of {name}")


@cache
def load_schema_set(directory: Path | str = SCHEMA_DIR) -> SchemaSet:
    """Parsed schemas, loaded once per process (per directory)."""
    return SchemaSet(directory)


def fingerprint_of(schema_name: str) -> bytes:
    """The 8-byte fingerprint written in front of every current ``schema_name`` message."""
    return load_schema_set().get(schema_name).fingerprint


def _write(sv: SchemaVersion, record: dict[str, Any]) -> bytes:
    buf = BytesIO()
    buf.write(MAGIC)
    buf.write(sv.fingerprint)
    try:
        schemaless_writer(buf, sv.parsed, record)
    except Exception as exc:
        raise SerdeError(f"cannot encode {sv.label}: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def encode(event: Event) -> bytes:
    """Single-object encoding of ``event`` with its current schema."""
    name = getattr(type(event), "SCHEMA_NAME", None)
    if not isinstance(event, Event) or name is None:
        raise SerdeError(f"cannot encode {type(event).__name__}: not a common.events message type")
    return _write(load_schema_set().get(name), event.to_dict())


def encode_raw(record: dict[str, Any], schema_name: str, version: int | None = None) -> bytes:
    """Encode a plain dict with the current or a historical writer schema.

    For tests and tools that must produce what an older service version wrote.
    """
    return _write(load_schema_set().get(schema_name, version), record)


def parse_header(data: bytes | bytearray | memoryview) -> SchemaVersion:
    """The writer schema named by a message's header (checks length, magic and fingerprint)."""
    if len(data) < HEADER_SIZE:
        raise SerdeError(f"truncated: {len(data)} bytes, need at least {HEADER_SIZE}")
    if data[:2] != MAGIC:
        got = bytes(data[:2]).hex()
        raise SerdeError(f"bad magic 0x{got}, expected 0x{MAGIC.hex()} (Avro single-object encoding)")
    fp = bytes(data[2:HEADER_SIZE])
    sv = load_schema_set().by_fingerprint.get(fp) or _LEARNED.get(fp)
    if sv is None:
        raise UnknownSchema(
            f"unknown schema fingerprint {fp.hex()} (not a current or kept schema version)", fp
        )
    return sv


# ---------------------------------------------------------------------------- learned schemas
# Writer schemas of newer service versions, taught at run time from the schema store. A
# fingerprint names exactly one schema forever, so what was learned never needs forgetting.
_LEARNED: dict[bytes, SchemaVersion] = {}
_LEARN_LOCK = threading.Lock()
_STORE_PATH = Path("<schema store>")


def learn_schema(schema_json: str | dict[str, Any], fingerprint: bytes | None = None) -> SchemaVersion:
    """Accept a writer schema this build does not ship (from the schema store), for decoding.

    Refused (SerdeError) unless it parses, is a record of a message type this build knows (a
    reader schema exists to resolve it to) and, when ``fingerprint`` is given, really has that
    fingerprint: a store row must not be able to pass one schema off as another.
    """
    try:
        raw = json.loads(schema_json) if isinstance(schema_json, str) else schema_json
    except ValueError as exc:
        raise SerdeError(f"schema store entry is not JSON: {exc}") from exc
    sv = _from_raw(raw, _STORE_PATH, None, shipped=False)
    if fingerprint is not None and sv.fingerprint != fingerprint:
        raise SerdeError(f"schema store entry for {fingerprint.hex()} has fingerprint {sv.fingerprint.hex()}")
    schemas = load_schema_set()
    if sv.name not in schemas.current:
        raise SerdeError(f"schema store entry {sv.name} is not a message type this version reads")
    known = schemas.by_fingerprint.get(sv.fingerprint)
    if known is not None:
        return known
    with _LEARN_LOCK:
        return _LEARNED.setdefault(sv.fingerprint, sv)


def learned_schemas() -> dict[bytes, SchemaVersion]:
    """Writer schemas learned from the store by this process (for status pages and tests)."""
    return dict(_LEARNED)


def shipped_schemas() -> list[SchemaVersion]:
    """Every schema this build ships (current and kept history): what a producer registers."""
    schemas = load_schema_set()
    out = list(schemas.current.values())
    for versions in schemas.history.values():
        out += versions
    return out


def _read_body(data: bytes | bytearray | memoryview, writer: SchemaVersion) -> tuple[str, dict[str, Any]]:
    schemas = load_schema_set()
    reader = schemas.current[writer.name]
    buf = BytesIO(data)
    buf.seek(HEADER_SIZE)
    try:
        record = schemaless_reader(
            buf, writer.parsed, None if reader.fingerprint == writer.fingerprint else reader.parsed
        )
    except SchemaResolutionError as exc:
        if not writer.shipped:
            # A newer writer this version cannot map onto its reader schema (e.g. an enum symbol
            # added without a default): not the message's fault, a newer reader will read it.
            raise UnknownSchema(
                f"{writer.label} does not resolve to this version's {reader.label}: {exc}", writer.fingerprint
            ) from exc
        raise SerdeError(f"body does not decode as {writer.label}: SchemaResolutionError: {exc}") from exc
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__} (body truncated?)"
        raise SerdeError(f"body does not decode as {writer.label}: {detail}") from exc
    extra = len(data) - buf.tell()
    if extra:
        raise SerdeError(f"body does not decode as {writer.label}: {extra} trailing bytes")
    if not isinstance(record, dict):
        raise SerdeError(f"body does not decode as {writer.label}: not a record")
    return writer.name, record


def decode_raw(data: bytes | bytearray | memoryview) -> tuple[str, dict[str, Any]]:
    """``(schema full name, record dict)`` resolved to the current schema; no dataclass validation."""
    return _read_body(data, parse_header(data))


@overload
def decode(data: bytes | bytearray | memoryview, expected: type[T]) -> T: ...
@overload
def decode(data: bytes | bytearray | memoryview, expected: None = None) -> Event: ...
def decode(data: bytes | bytearray | memoryview, expected: type[Event] | None = None) -> Event:
    """Decode a message into its event dataclass; with ``expected``, refuse any other type.

    The type check uses the header alone, so a message on the wrong topic is refused before its
    body is read.
    """
    writer = parse_header(data)
    if expected is not None and writer.name != expected.SCHEMA_NAME:
        raise SerdeError(f"expected {expected.SCHEMA_NAME}, got {writer.name}")
    name, record = _read_body(data, writer)
    cls = expected or event_type_for(name)
    try:
        return cls.from_dict(record)
    except Exception as exc:
        raise SerdeError(f"body does not decode as {writer.label}: invalid value: {exc}") from exc
