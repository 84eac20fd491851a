"""Clocks for the mail lab: real UTC time, or a fixed time that moves only when the caller moves it.

A fixed clock makes everything the lab writes reproducible: the banner date, log lines, queue
file names and message ids come out the same on every run, which nbval needs to compare
executed runbooks.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol

# Taiwan has used UTC+8 all year without daylight saving time since 1980, so a fixed offset
# is exact for dates in the runbooks.
TAIWAN_TIME = timezone(timedelta(hours=8), "CST")

# English names as SMTP dates need them; strftime's %a and %b follow the process locale.
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Clock(Protocol):
    """The lab's source of time: `now()` returns an aware datetime in UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The computer's real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that stays at one instant until `advance()` or `set()` moves it.

    `now()` can be called from the lab's thread while a notebook moves the clock from its own,
    so the current instant is guarded by a lock.
    """

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._now = _as_utc(start)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move the clock forward by `delta` (a timedelta or seconds) and return the new instant."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        if delta < timedelta(0):
            raise ValueError(f"a FixedClock only moves forward; got {delta}")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        """Move the clock to `instant` (an aware datetime, or a naive one taken as UTC)."""
        with self._lock:
            self._now = _as_utc(instant)

    def __repr__(self) -> str:
        return f"FixedClock({self.now().isoformat()})"


def _as_utc(instant: datetime) -> datetime:
    """Return `instant` in UTC; a naive datetime is taken to be UTC already."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(timezone.utc)


def resolve_clock(clock: Clock | datetime | None) -> Clock:
    """Return a usable clock: None gives real time, a datetime gives a FixedClock at it."""
    if clock is None:
        return SystemClock()
    if isinstance(clock, datetime):
        return FixedClock(clock)
    if not callable(getattr(clock, "now", None)):
        raise TypeError(f"clock must have a now() method, a datetime or None; got {clock!r}")
    return clock


def milliseconds_between(start: datetime, end: datetime) -> int:
    """Return the whole milliseconds from `start` to `end`, never negative."""
    elapsed = end - start
    return max(0, elapsed // timedelta(milliseconds=1))


def rfc2822_date(instant: datetime, zone: timezone) -> str:
    """Format `instant` in `zone` the way the SMTP service writes dates: `Mon, 2 Mar 2026 09:15:07 +0800`.

    The day of the month has no leading zero, unlike `email.utils.format_datetime`.
    """
    local = instant.astimezone(zone)
    day_name = DAY_NAMES[local.weekday()]
    month = MONTH_NAMES[local.month - 1]
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    offset_minutes = abs(offset) // timedelta(minutes=1)
    return (f"{day_name}, {local.day} {month} {local.year} {local:%H:%M:%S} "
            f"{sign}{offset_minutes // 60:02d}{offset_minutes % 60:02d}")
