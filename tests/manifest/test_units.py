"""Durations and weights as people write them in a manifest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retailblocks.errors import InvalidValue
from retailblocks.manifest import format_duration, parse_duration, parse_weight


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("30s", timedelta(seconds=30)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        (" 15m ", timedelta(minutes=15)),
        ("0s", timedelta()),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (15, "a number needs a unit"),
        (True, "expected a duration"),
        ("15", "expected a duration"),
        ("soon", "(got 'soon')"),
        ("1m1h", "expected a duration"),
        ("1h 30m", "expected a duration"),
        ("", "expected a duration"),
        ("-5m", "expected a duration"),
        ("99999999999999d", "longer than 3650 days"),
    ],
)
def test_bad_durations(value, says):
    with pytest.raises(InvalidValue, match=None) as caught:
        parse_duration(value)
    assert says in str(caught.value)


@given(st.integers(min_value=0, max_value=3650 * 86_400_000))
def test_durations_round_trip_to_the_millisecond(milliseconds):
    duration = timedelta(milliseconds=milliseconds)
    assert parse_duration(format_duration(duration)) == duration


@pytest.mark.parametrize(
    ("value", "grams"),
    [("350g", 350), ("1.2kg", 1200), (350, 350), ("0.5 kg", 500), ("0g", 0), ("1.234kg", 1234)],
)
def test_weights(value, grams):
    assert parse_weight(value) == grams


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (-1, "cannot be negative"),
        (True, "expected a weight"),
        (1.5, "expected a weight"),
        ("1.2345kg", "weights are whole grams"),
        ("350", "expected a weight"),
        ("heavy", "(got 'heavy')"),
    ],
)
def test_bad_weights(value, says):
    with pytest.raises(InvalidValue) as caught:
        parse_weight(value)
    assert says in str(caught.value)
