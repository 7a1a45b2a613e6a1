"""Injectable time and identifiers, so flows are reproducible under a seed."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol


def as_utc(moment: datetime) -> datetime:
    """A moment read back from the database, timezone-aware whatever the database: SQLite hands back the
    naive UTC moments it stored, PostgreSQL aware ones. Other zones are converted to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


#: How long a process owns a running flow before recovery may take it over (Stack.lease overrides it).
#: Leases are read on the stack's lease clock (the wall clock unless a test injects another), never on a
#: simulated business clock: they coordinate processes, which share only the wall clock.
FLOW_LEASE = timedelta(minutes=2)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: for tests and simulations."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        # Reading one attribute is atomic, and every writer replaces the value whole under the lock, so a
        # reader sees the moment before or after an advance, never half of one. (Read dozens of times per
        # checkout.)
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment


class IdFactory(Protocol):
    def new_id(self, prefix: str) -> str: ...


class RandomIds:
    """Unique identifiers ``prefix_<hex>``; random by default, reproducible when seeded.

    A seeded factory is for one process (a simulation worker gets its own ``namespace`` so several
    workers never produce the same id).
    """

    def __init__(self, seed: int | None = None, namespace: str = ""):
        self._random = random.Random(seed) if seed is not None else None
        self._namespace = namespace
        self._lock = threading.Lock()

    def new_id(self, prefix: str) -> str:
        if self._random is None:
            return f"{prefix}_{uuid.uuid4().hex[:20]}"
        with self._lock:
            bits = self._random.getrandbits(80)
        return f"{prefix}_{self._namespace}{bits:020x}"
