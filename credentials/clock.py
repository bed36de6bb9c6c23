"""Time values the credential core accepts: seconds since the epoch, or a timezone-aware datetime.

Core functions take ``now=`` as a parameter (never reading the clock themselves); this module turns
either form into seconds and refuses naive datetimes, whose meaning depends on the machine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Union

__all__ = ["Timestamp", "seconds"]

Timestamp = Union[int, float, datetime]


def seconds(t: Timestamp) -> int | float:
    """``t`` in seconds since the epoch; raises ``TypeError`` for a naive datetime or a non-number."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise TypeError("datetime must be timezone-aware")
        return t.timestamp()
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise TypeError(f"time must be seconds since the epoch or a datetime, not {type(t).__name__}")
    return t
