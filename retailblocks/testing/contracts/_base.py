"""What every contract shares: the block under test assembled by the harness, and the hunt for secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import pytest

from retailblocks.hookspecs.blocks import Block
from retailblocks.testing.harness import BlockHarness

#: Values shorter than this are not hunted for: "1" or "on" would be found everywhere.
MIN_SECRET_LENGTH = 6


class Contract:
    """Base of the contracts. A block's test class sets ``block_class``, ``config`` (the manifest's
    ``config:`` for the block) and ``environ`` (values for its ``${VAR}``; every value is treated as a
    secret that must never show in events, error messages, reprs or log records)."""

    block_class: ClassVar[type[Block]]
    config: ClassVar[Mapping[str, Any]] = {}
    environ: ClassVar[Mapping[str, str]] = {}

    def harness_options(self) -> Mapping[str, Any]:
        """Further :class:`BlockHarness` options for the stack (``skus``, ``names``, ``channels``…)."""
        return {}

    def make_harness(self, database_url: str) -> BlockHarness:
        return BlockHarness(
            self.block_class, database_url, config=self.config, environ=self.environ, **self.harness_options()
        )

    @pytest.fixture
    def harness(self, database_url: str, caplog: pytest.LogCaptureFixture) -> Iterator[BlockHarness]:
        """The block assembled on a fresh database; afterwards, no secret may have shown anywhere."""
        caplog.set_level(logging.DEBUG)
        bench = self.make_harness(database_url)
        try:
            yield bench
            leaks = secret_leaks(self.environ, bench, caplog.records)
        finally:
            bench.close()
        assert not leaks, "a secret from `environ` showed: " + "; ".join(leaks)


def secrets_of(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if len(value) >= MIN_SECRET_LENGTH}


def secret_leaks(environ: Mapping[str, str], harness: BlockHarness, records: Iterable[logging.LogRecord]) -> list[str]:
    """Where a value of ``environ`` shows: events, errors raised through the harness, reprs, log records.
    Each place is named with the variable, never the value."""
    places: list[tuple[str, str]] = []
    for event in harness.events():
        text = json.dumps([event.payload, event.order_id, event.member_id], default=str)
        places.append((f"the payload of event {event.type!r} (#{event.id})", text))
    for error in harness.raised:
        for link in _chain(error):
            places.append((f"the message of {type(link).__name__}", f"{link} {link!r}"))
    places.append(("repr(block)", repr(harness.block)))
    places.append(("repr(block.config)", repr(getattr(harness.block, "config", None))))
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        places.append((f"log record {record.name}:{record.levelname}", text))
    return [
        f"${{{name}}} in {where}"
        for name, value in sorted(secrets_of(environ).items())
        for where, text in places
        if value in text
    ]


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
