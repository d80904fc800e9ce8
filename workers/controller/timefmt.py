"""Timestamps as text: RFC 3339 in UTC, the form of every record and event."""

import datetime


def utc_now() -> str:
    """Wall-clock time for records (never for waits)."""
    return datetime.datetime.now(datetime.UTC).isoformat()


def rfc3339_ms(epoch_ms: int) -> str:
    return datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC).isoformat(timespec="milliseconds")
