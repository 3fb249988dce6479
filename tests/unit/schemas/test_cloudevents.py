"""CloudEvents (Kafka binding) -> our event records, both modes, and the errors for bad ones."""

from __future__ import annotations

import re

import orjson
import pytest

from agents.triggers import build_event
from schemas.cloudevents import CloudEventError, event_from_kafka, is_cloudevent, to_kafka
from schemas.errors import ContractError

NOW = 1_750_000_000.0
DATA = {"starts_at": "2025-06-16T02:00:00Z", "ends_at": 1750042800, "scope": {"apps": ["etl"]}, "impact": {"factor": 2}}


def binary(data=DATA, **attrs):
    h = {"ce_specversion": b"1.0", "ce_id": b"evt-42", "ce_source": b"//ci/pipeline", "ce_type": b"io.plba.event.peak",
         "content-type": b"application/json"}  # fmt: skip
    for k, v in attrs.items():
        if v is None:
            h.pop(k, None)
        else:
            h[k] = v.encode() if isinstance(v, str) else v
    return list(h.items()), orjson.dumps(data)


def test_binary_mode_subset_becomes_a_valid_event():
    headers, value = binary()
    assert is_cloudevent(headers)
    e = event_from_kafka(headers, value, now=NOW)
    assert e["event_type"] == "ingestion_peak"
    assert e["starts_at"] == 1750039200.0 and e["ends_at"] == 1750042800.0
    assert re.fullmatch(r"ce-[0-9a-f]{24}", e["event_id"])
    assert (e["source"], e["issued_at"], e["schema_version"]) == ("cloudevents", NOW, 1)
    # Redelivery of the same CloudEvent maps to the same event id; another id to another.
    assert event_from_kafka(headers, value)["event_id"] == e["event_id"]
    other, _ = binary(ce_id="evt-43")
    assert event_from_kafka(other, value)["event_id"] != e["event_id"]


def test_ce_time_gives_issued_at_and_data_event_id_wins():
    headers, value = binary({**DATA, "event_id": "etl-2025-06-16"}, ce_time="2025-06-15T15:06:40Z")
    e = event_from_kafka(headers, value, now=0.0)
    assert e["event_id"] == "etl-2025-06-16" and e["issued_at"] == NOW


def test_structured_mode():
    envelope = {"specversion": "1.0", "id": "1", "source": "cal", "type": "io.plba.event.maintenance",
                "time": "2025-06-15T15:06:40+00:00", "datacontenttype": "application/json",
                "data": {"starts_at": 1750039200, "ends_at": 1750042800, "scope": {"nodes": ["n1"]}}}  # fmt: skip
    headers = [("content-type", b"application/cloudevents+json; charset=utf-8")]
    assert is_cloudevent(headers)
    e = event_from_kafka(headers, orjson.dumps(envelope))
    assert (e["event_type"], e["scope"], e["issued_at"]) == ("maintenance", {"nodes": ["n1"]}, NOW)


def test_round_trip_of_our_own_publication():
    event = build_event("maintenance", starts_at=NOW + 60, ends_at=NOW + 120, scope={"nodes": ["n1"]}, now=NOW,
                        reason="kernel", event_id="m-1")  # fmt: skip
    headers, value = to_kafka(event, source="/plba/cli")
    h = dict(headers)
    assert h["ce_type"] == b"io.plba.event.maintenance" and h["ce_subject"] == b"m-1"
    assert h["ce_time"] == b"2025-06-15T15:06:40.000Z"
    assert event_from_kafka(headers, value) == event


def test_plain_records_are_not_cloudevents():
    assert not is_cloudevent([])
    assert not is_cloudevent(None)
    assert not is_cloudevent([("content-type", b"application/json")])


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        ({"ce_specversion": "0.3"}, "headers.ce_specversion", "must be '1.0', got '0.3'"),
        ({"ce_type": "io.plba.event.outage"}, "headers.ce_type", "unknown type 'io.plba.event.outage'"),
        ({"ce_id": None}, "headers.ce_id", "required CloudEvents attribute is missing"),
        ({"ce_source": ""}, "headers.ce_source", "required CloudEvents attribute is missing or empty"),
        ({"content-type": "text/plain"}, "headers.content-type", "PLBA reads JSON event data only"),
        ({"ce_id": b"\xff\xfe"}, "headers.ce_id", "not UTF-8"),
        ({"ce_time": "yesterday"}, "headers.ce_time", "not an RFC 3339 time"),
    ],
)
def test_bad_attributes(mutate, path, message):
    headers, value = binary(**mutate)
    with pytest.raises(CloudEventError) as info:
        event_from_kafka(headers, value)
    assert info.value.path == path and message in info.value.reason


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({**DATA, "starts_at": "2025-06-16T02:00:00"}, "$.starts_at", "not an RFC 3339 time with a zone"),
        ({**DATA, "colour": "red"}, "$.colour", "unknown field"),
        ({**DATA, "event_type": "maintenance"}, "$.event_type", "disagrees with the CloudEvent type"),
        ({k: v for k, v in DATA.items() if k != "ends_at"}, "$.ends_at", "required field is missing"),
        ([1, 2], "$", "event data must be a JSON object"),
        ({**DATA, "ends_at": "2025-06-16T01:00:00Z"}, "$.ends_at", "is not after starts_at"),
        ({**DATA, "scope": {"racks": ["r1"]}}, "$.scope.racks", "unknown field"),
        ({**DATA, "impact": {"factor": 0}}, "$.impact.factor", ""),
    ],
)
def test_bad_data_is_a_contract_error_with_the_path(data, path, message):
    headers, value = binary(data)
    with pytest.raises(ContractError) as info:
        event_from_kafka(headers, value)
    assert info.value.type_name == "event"
    assert info.value.path == path and message in info.value.reason


def test_not_json_and_no_value_and_not_a_cloudevent():
    headers, _ = binary()
    with pytest.raises(CloudEventError, match="not valid JSON") as info:
        event_from_kafka(headers, b"{nope")
    assert info.value.code == "invalid_json"
    with pytest.raises(CloudEventError, match="needs a value"):
        event_from_kafka(headers, None)
    with pytest.raises(CloudEventError, match="not a CloudEvent"):
        event_from_kafka([("content-type", b"application/json")], orjson.dumps(DATA))
    with pytest.raises(CloudEventError, match="binary data is not supported"):
        event_from_kafka(
            [("content-type", b"application/cloudevents+json")],
            orjson.dumps({"specversion": "1.0", "id": "1", "source": "s", "type": "io.plba.event.custom",
                          "data_base64": "AAAA"}),
        )  # fmt: skip


def test_size_limit():
    headers, value = binary()
    with pytest.raises(CloudEventError, match="over the limit") as info:
        event_from_kafka(headers, value, max_bytes=10)
    assert info.value.code == "too_large"
