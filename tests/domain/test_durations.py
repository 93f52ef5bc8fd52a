"""The one function that writes durations: the configured unit, singular and plural."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from moorage.config import ConfigError, parse_duration
from moorage.domain.durations import Span, describe, span


@pytest.mark.parametrize(("written", "read"), [
    ("72h", "72 hours"), ("3d", "3 days"), ("1d", "1 day"), ("1s", "1 second"), ("2s", "2 seconds"),
    ("1m", "1 minute"), ("90m", "90 minutes"), ("1h", "1 hour"), ("2w", "2 weeks"), ("1w", "1 week"),
    ("1.5d", "1.5 days"), ("0.5h", "0.5 hours"), (1, "1 second"), (3600, "3600 seconds"), ("0s", "0 seconds"),
])
def test_a_configured_duration_reads_in_the_unit_it_was_written_in(written: object, read: str) -> None:
    assert describe(parse_duration(written, "policy.x")) == read


def test_a_plain_timedelta_reads_in_its_largest_whole_unit() -> None:
    assert [describe(timedelta(seconds=s)) for s in (1, 59, 60, 3600, 7200, 86400, 90061)] == [
        "1 second", "59 seconds", "1 minute", "1 hour", "2 hours", "1 day", "90061 seconds"]


def test_a_span_is_a_timedelta() -> None:
    hours = span(72, "h")
    assert hours == timedelta(days=3) == parse_duration("3d", "k")
    assert datetime(2026, 1, 1, tzinfo=UTC) + hours == datetime(2026, 1, 4, tzinfo=UTC)
    assert pickle.loads(pickle.dumps(hours)).unit == "h"
    with pytest.raises(ValueError):
        Span(1, "fortnight")
    with pytest.raises(ConfigError):
        parse_duration("-1h", "policy.x")
