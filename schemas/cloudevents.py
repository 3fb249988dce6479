"""CloudEvents on the events topic: external systems inject triggers without a PLBA client.

Kafka protocol binding of CloudEvents 1.0, both modes:

* **binary** (preferred): attributes in headers ``ce_specversion`` (``1.0``), ``ce_id``,
  ``ce_source``, ``ce_type``, optional ``ce_time`` (RFC 3339) and ``ce_subject``;
  ``content-type: application/json``; the record value is the event data.
* **structured**: ``content-type: application/cloudevents+json`` and the value is the whole
  CloudEvent as JSON (``specversion``, ``id``, ``source``, ``type``, ``time``, ``data``).

``type`` says what the event is: ``io.plba.event.maintenance``, ``io.plba.event.ingestion_peak``
(alias ``io.plba.event.peak``) or ``io.plba.event.custom``.

``data`` is our event record (``schemas/json/event.schema.json``) or this subset of it:
``starts_at`` and ``ends_at`` (epoch seconds or RFC 3339 strings), ``scope`` (required),
``impact``, ``name``, ``reason``, ``cancelled``, ``event_id``, ``recurrence_id``. Missing
pieces come from the envelope: ``event_type`` from ``type``; ``event_id``, when absent, is
``ce-`` + a digest of (``source``, ``id``), so a redelivered CloudEvent maps to the same event;
``issued_at`` from ``time``; ``source`` is ``cloudevents`` unless the data names one.

The events topic is compacted: producers must set the record key (the event id they will use
to update or cancel it).

It depends only on :mod:`schemas` and the standard library: node-side publishers and the
stream processors (which read the events topic) share it.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.codec import codec
from schemas.errors import INVALID_JSON, NOT_AN_OBJECT, SCHEMA_VIOLATION, ContractError, Violation

__all__ = [
    "SPEC_VERSION",
    "TYPES",
    "CloudEventError",
    "event_from_kafka",
    "is_cloudevent",
    "to_kafka",
]

SPEC_VERSION = "1.0"
TYPE_PREFIX = "io.plba.event."
TYPES: dict[str, str] = {
    "io.plba.event.maintenance": "maintenance",
    "io.plba.event.ingestion_peak": "ingestion_peak",
    "io.plba.event.peak": "ingestion_peak",
    "io.plba.event.custom": "custom",
}
STRUCTURED = "application/cloudevents+json"
DATA_FIELDS = frozenset(
    {
        "schema_version", "event_id", "event_type", "name", "reason", "starts_at", "ends_at", "scope",
        "impact", "cancelled", "issued_at", "source", "recurrence_id",
    }
)  # fmt: skip
DEFAULT_SOURCE = "cloudevents"
_JSON_TYPE = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)


class CloudEventError(ContractError):
    """A record on the events topic that is not a usable CloudEvent; ``path`` names the attribute."""

    def __init__(self, path: str, reason: str, code: str = SCHEMA_VIOLATION) -> None:
        super().__init__("event", code, (Violation(path, reason),))


def _header_map(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for name, raw in items:
        key = str(name).lower()
        if raw is None:
            continue
        try:
            out[key] = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else str(raw)
        except UnicodeDecodeError:
            raise CloudEventError(f"headers.{key}", "header value is not UTF-8 text") from None
    return out


def is_cloudevent(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> bool:
    """True when the Kafka headers mark a CloudEvent (binary or structured mode)."""
    h = _header_map(headers)
    return "ce_specversion" in h or h.get("content-type", "").lower().startswith(STRUCTURED)


def _instant(value: Any, path: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise CloudEventError(path, f"{value} is not a finite number")
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise CloudEventError(path, f"{value!r} is not an RFC 3339 time with a zone (e.g. 2025-06-01T22:00:00Z)")
        return moment.timestamp()
    raise CloudEventError(path, f"expected epoch seconds or an RFC 3339 string, got {type(value).__name__}")


def event_from_kafka(
    headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None,
    value: bytes | None,
    *,
    now: float | None = None,
    max_bytes: int = 1024 * 1024,
) -> dict[str, Any]:
    """Our validated event record from a CloudEvent Kafka record (see the module docstring).

    ``now`` (epoch seconds) is used as ``issued_at`` when neither the data nor ``ce_time`` has
    one. Raises :class:`CloudEventError` / :class:`ContractError` with the offending path.
    """
    h = _header_map(headers)
    if value is None:
        raise CloudEventError("$", "a CloudEvent needs a value (tombstones carry no event)")
    if len(value) > max_bytes:
        raise CloudEventError("$", f"record is {len(value)} bytes, over the limit of {max_bytes}", "too_large")
    content_type = h.get("content-type", "")
    if "ce_specversion" in h:
        attrs = {k[3:]: v for k, v in h.items() if k.startswith("ce_")}
        where = "headers.ce_"
        if content_type and not _JSON_TYPE.match(content_type):
            raise CloudEventError("headers.content-type", f"{content_type!r}: PLBA reads JSON event data only")
        data = _json(value, "$")
    elif content_type.lower().startswith(STRUCTURED):
        envelope = _json(value, "$")
        if not isinstance(envelope, dict):
            raise CloudEventError("$", "a structured CloudEvent must be a JSON object", NOT_AN_OBJECT)
        if "data_base64" in envelope:
            raise CloudEventError("$.data_base64", "binary data is not supported: send the event as JSON data")
        attrs = {k: v for k, v in envelope.items() if k != "data"}
        where = "$."
        data = envelope.get("data")
        dct = attrs.get("datacontenttype")
        if dct is not None and not (isinstance(dct, str) and _JSON_TYPE.match(dct)):
            raise CloudEventError("$.datacontenttype", f"{dct!r}: PLBA reads JSON event data only")
    else:
        raise CloudEventError(
            "headers", "not a CloudEvent: no ce_specversion header and not application/cloudevents+json"
        )

    spec = attrs.get("specversion")
    if spec != SPEC_VERSION:
        raise CloudEventError(f"{where}specversion", f"must be {SPEC_VERSION!r}, got {spec!r}")
    for required in ("id", "source", "type"):
        if not isinstance(attrs.get(required), str) or not attrs[required]:
            raise CloudEventError(f"{where}{required}", "required CloudEvents attribute is missing or empty")
    ce_type = str(attrs["type"])
    event_type = TYPES.get(ce_type)
    if event_type is None:
        raise CloudEventError(f"{where}type", f"unknown type {ce_type!r}; use one of {', '.join(TYPES)}")

    if not isinstance(data, dict):
        raise CloudEventError("$.data" if where == "$." else "$", "event data must be a JSON object", NOT_AN_OBJECT)
    unknown = sorted(set(data) - DATA_FIELDS)
    if unknown:
        raise CloudEventError(f"$.{unknown[0]}", f"unknown field; event data may have {', '.join(sorted(DATA_FIELDS))}")
    declared = data.get("event_type")
    if declared is not None and declared != event_type:
        raise CloudEventError("$.event_type", f"{declared!r} disagrees with the CloudEvent type {ce_type!r}")

    record: dict[str, Any] = {k: v for k, v in data.items() if k not in ("starts_at", "ends_at", "issued_at")}
    record["schema_version"] = data.get("schema_version", 1)
    record["event_type"] = event_type
    for name in ("starts_at", "ends_at"):
        if name not in data:
            raise CloudEventError(f"$.{name}", "required field is missing")
        record[name] = _instant(data[name], f"$.{name}")
    if "event_id" not in record:
        digest = hashlib.sha256(f"{attrs['source']}\x00{attrs['id']}".encode()).hexdigest()[:24]
        record["event_id"] = f"ce-{digest}"
    record.setdefault("source", DEFAULT_SOURCE)
    if "issued_at" in data:
        record["issued_at"] = _instant(data["issued_at"], "$.issued_at")
    elif attrs.get("time"):
        record["issued_at"] = _instant(attrs["time"], f"{where}time")
    elif now is not None:
        record["issued_at"] = float(now)
    codec("event", max_bytes=max_bytes).validate(record)
    return record


def _json(value: bytes, path: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise CloudEventError(path, f"not valid JSON: {exc}", INVALID_JSON) from None


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_kafka(
    event: Mapping[str, Any], *, source: str = "/plba/cli", ce_id: str | None = None
) -> tuple[list[tuple[str, bytes]], bytes]:
    """(headers, value) of a binary-mode CloudEvent carrying our event record (validated).

    ``ce_id`` defaults to ``<event_id>@<issued_at in ms>``: unique per publication, so a
    cancellation is a new CloudEvent about the same event.
    """
    value = codec("event").encode(event)
    issued = event.get("issued_at")
    headers = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", (ce_id or f"{event['event_id']}@{round((issued or 0) * 1000)}").encode()),
        ("ce_source", source.encode()),
        ("ce_type", f"{TYPE_PREFIX}{event['event_type']}".encode()),
        ("ce_subject", str(event["event_id"]).encode()),
        ("content-type", b"application/json"),
    ]
    if issued is not None:
        headers.append(("ce_time", _rfc3339(float(issued)).encode()))
    return headers, value
