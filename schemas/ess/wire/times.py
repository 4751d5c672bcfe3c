"""Time on the wire: instants are integer microseconds since 1970-01-01 UTC (`poll_start_us`,
`poll_end_us`); text is ISO 8601 in UTC. Conversions here are exact (integer arithmetic, no
float seconds), for any instant of the years 1..9999."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_datetime(us: int) -> datetime:
    """The aware UTC datetime of `us` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (a naive one is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - EPOCH) // _US


def iso(us: int) -> str:
    """`2026-11-25T00:00:00.123456+00:00` (as PostgreSQL reads a timestamptz)."""
    return to_datetime(us).isoformat()


def iso_z(us: int) -> str:
    """`2026-11-25T00:00:00.123456Z` (message attributes and logs)."""
    return iso(us).replace("+00:00", "Z")


US_MIN = to_us(datetime(1, 1, 1, tzinfo=UTC))                          # 0001-01-01T00:00Z
US_MAX = to_us(datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))  # the last instant
