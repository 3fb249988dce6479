"""Size strings: units, errors that say what is accepted, and a round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.sizes import SizeError, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1024", 1024),
        ("512B", 512),
        ("1K", 1024),
        ("256M", 256 * 1024**2),
        ("256m", 256 * 1024**2),
        ("256Mi", 256 * 1024**2),
        ("256MiB", 256 * 1024**2),
        ("8G", 8 * 1024**3),
        ("1T", 1024**4),
        ("1.5G", 3 * 1024**3 // 2),
        (" 2 GiB ", 2 * 1024**3),
        ("2GB", 2_000_000_000),
        ("10MB", 10_000_000),
        ("1kb", 1000),
        (".5K", 512),
    ],
)
def test_parse(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad size ''"),
        ("12X", "unknown unit 'X'"),
        ("-1G", "bad size '-1G'"),
        ("G", "bad size 'G'"),
        ("1 2M", "bad size '1 2M'"),
        ("1e3M", "bad size '1e3M'"),
        ("99999999999T", "too large"),
    ],
)
def test_parse_refuses_with_a_hint(text, message):
    with pytest.raises(SizeError) as err:
        parse_size(text)
    assert message in str(err.value)
    if "too large" not in message:
        assert "e.g. 256M" in str(err.value)


def test_ints_pass_through_but_not_negative_or_bool():
    assert parse_size(4096) == 4096
    with pytest.raises(SizeError):
        parse_size(-1)
    with pytest.raises(SizeError):
        parse_size(True)


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0"), (1000, "1000"), (1024, "1Ki"), (256 * 1024**2, "256Mi"), (3 * 1024**3 // 2, "1536Mi")]
)
def test_format(size, text):
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**50))
def test_exact_formats_parse_back(size):
    text = format_size(size)
    if "." not in text:
        assert parse_size(text) == size


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "K", "M", "G", "Ki", "MiB", "KB", "GB"]))
def test_any_number_with_a_unit_parses(number, unit):
    assert parse_size(f"{number}{unit}") >= number
