"""Every bad-record kind is refused by the consumers' checks with the code the injection run expects."""

from __future__ import annotations

import random
import time

import pytest

from plba.faults.bad_records import EXPECTED_CODE, INPUT_ROLES, bad, kinds, plan, record_type, valid
from schemas.codec import check_clock, codec
from schemas.errors import ContractError

MAX_BYTES = 8192
NOW = time.time()


def consume(role: str, data: bytes | None, now: float = NOW) -> dict:
    """What intake does with a record: decode with the size limit, then the clock rule."""
    value = codec(record_type(role), max_bytes=MAX_BYTES).decode(data)
    check_clock(record_type(role), value, now)
    return value


@pytest.mark.parametrize("role", INPUT_ROLES)
def test_valid_records_pass_decode_and_clock(role: str) -> None:
    for i in range(50):
        rec = valid(role, i, NOW)
        assert consume(role, codec(record_type(role)).encode(rec)) == rec


@pytest.mark.parametrize("role", INPUT_ROLES)
@pytest.mark.parametrize("kind", list(EXPECTED_CODE))
def test_each_bad_kind_gets_its_code(role: str, kind: str) -> None:
    if kind not in kinds(role):
        with pytest.raises(ValueError):
            bad(role, kind, random.Random(0), NOW, MAX_BYTES)
        return
    rng = random.Random(f"{role}/{kind}")
    for i in range(200):
        data = bad(role, kind, rng, NOW, MAX_BYTES, i)
        with pytest.raises(ContractError) as err:
            consume(role, data)
        assert err.value.code == EXPECTED_CODE[kind], (data[:300], err.value)
        if kind == "oversized":
            assert data is not None and len(data) > MAX_BYTES
        else:
            assert data is None or len(data) <= MAX_BYTES


def test_clock_rule_bounds() -> None:
    rec = valid("workload_usage", 0, NOW)
    check_clock("workload_usage", {**rec, "sampled_at": NOW + 300 * 86400}, NOW)  # weeks ahead: benchmarks
    check_clock("workload_usage", {**rec, "sampled_at": 1_300_000_000.0}, NOW)  # a 2011 trace replay
    for at in (NOW + 400 * 86400, 5.0, 946_684_799.0):
        with pytest.raises(ContractError) as err:
            check_clock("workload_usage", {**rec, "sampled_at": at}, NOW)
        assert err.value.code == "clock_skew" and err.value.path == "$.sampled_at"
    check_clock("forecast", {"issued_at": 5.0}, NOW)  # only input types are checked


def test_plan_interleaves_exact_counts() -> None:
    for role in INPUT_ROLES:
        p = plan(role, 1000, 250, random.Random(1))
        assert p.count(None) == 250 and len(p) == 1250
        counts = {k: p.count(k) for k in kinds(role)}
        assert sum(counts.values()) == 1000
        assert max(counts.values()) - min(counts.values()) <= 1
