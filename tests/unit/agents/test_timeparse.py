"""Times, durations and sizes as operators type them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.timeparse import TimeParseError, format_instant, parse_duration, parse_instant, parse_size

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("+10m", NOW + 600),
        ("+2h", NOW + 7200),
        ("+1d", NOW + 86400),
        ("+1h30m", NOW + 5400),
        ("now+45s", NOW + 45),
        ("-5m", NOW - 300),
        ("+90", NOW + 90),
        ("2025-06-01T22:00:00Z", 1748815200.0),
        ("2025-06-01T22:00:00.250Z", 1748815200.25),
        ("2025-06-02T00:00:00+02:00", 1748815200.0),
        ("2025-06-01t17:30:00-04:30", 1748815200.0),
        ("2025-06-01 22:00:00Z", 1748815200.0),
        ("@1748815200", 1748815200.0),
    ],
)
def test_instants(text, expected):
    assert parse_instant(text, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty time"),
        ("tomorrow", "cannot read time 'tomorrow'"),
        ("+10x", "cannot read relative time '+10x'"),
        ("2025-06-01T22:00:00", "has no zone: add Z"),
        ("2025-06-01T22:00", "has no zone"),
        ("2025-02-30T22:00:00Z", "invalid date or time"),
        ("2025-06-01T22:00:00+25:00", "invalid zone offset"),
        ("@100000000000", "out of range"),
        ("-1000000000000s", "out of range"),
    ],
)
def test_bad_instants(text, message):
    with pytest.raises(TimeParseError, match=re.escape(message)):
        parse_instant(text, now=NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("0.5h", 1800)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "m", "1h 30m", "-5m", "1y", "abc"])
def test_bad_durations(text):
    if text == "10":
        assert parse_duration(text) == 10
        return
    with pytest.raises(TimeParseError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("1024", 1024), ("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30), ("1.5G", 1_500_000_000), ("-256Mi", -(2**28)),
     ("4k", 4000), ("4KiB", 4096), ("+1Ti", 2**40)],
)  # fmt: skip
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "5 gigs", "1Xi", "--1G"])
def test_bad_sizes(text):
    with pytest.raises(TimeParseError, match="cannot read size"):
        parse_size(text)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(4000, 1, 1), timezones=st.just(UTC)))
def test_format_then_parse_round_trips(dt):
    dt = dt.replace(microsecond=(dt.microsecond // 1000) * 1000)
    assert parse_instant(format_instant(dt.timestamp()), now=0) == pytest.approx(dt.timestamp(), abs=1e-3)


@given(
    st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(4000, 1, 1)),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
def test_offsets_agree_with_datetime(naive, tz):
    dt = naive.replace(microsecond=0, tzinfo=tz)
    assert parse_instant(dt.isoformat(), now=0) == dt.timestamp()


@given(st.integers(0, 100_000), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_relative_is_now_plus_duration(n, unit):
    assert parse_instant(f"+{n}{unit}", now=NOW) == NOW + parse_duration(f"{n}{unit}")
