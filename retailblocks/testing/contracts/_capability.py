"""What the membership, logistics and marketing contracts share: a harness per currency, calls through
the hooks, and running one call from many threads at once.

Every call a contract makes goes through ``harness.call(spec, ctx, ...)``: the assembled stack's hook
caller, as ``blocks assemble`` wires it, never the block's methods. Each call runs in its own flow
context, so it commits (or rolls back) on its own, as a flow step does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import pytest

from retailblocks.clock import ManualClock
from retailblocks.errors import BusinessRejection, InvalidInput
from retailblocks.model import Merchant
from retailblocks.testing.contracts._base import Contract, secret_leaks
from retailblocks.testing.harness import BlockHarness

R = TypeVar("R")

#: The moment every contract's clock starts at.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

#: The currencies money is checked in unless a contract says otherwise.
CURRENCIES = ("CNY", "USD")

#: How a block refuses what it must not do: an error that names the problem, not a crash of the block
#: (a crash reaches the caller as BlockFailure, which is neither).
REFUSALS: tuple[type[Exception], ...] = (InvalidInput, BusinessRejection)

#: How many calls race in the concurrency tests.
RACERS = 8


class CapabilityContract(Contract):
    """The base of the membership, logistics and marketing contracts: :class:`Contract`'s block, assembled
    for a merchant in each of ``currencies``.

    Override :meth:`config_for` when the configuration holds money, so the block can be assembled in
    either currency; :meth:`harness_options` adds to the stack as it does for every contract. Every
    value of ``environ`` is hunted for afterwards, as in every contract.
    """

    #: The two currencies money is checked in: a block that hard-codes one currency (or ignores the one
    #: it is asked for) shows in the other.
    currencies: ClassVar[tuple[str, str]] = CURRENCIES

    def config_for(self, currency: str) -> Mapping[str, Any]:
        """The block's configuration for a merchant trading in ``currency``."""
        return self.config

    def make_harness(self, database_url: str) -> BlockHarness:
        # What the lifecycle contract assembles when it is inherited beside a capability contract.
        return self.make_harness_in(database_url, self.currencies[0])

    def make_harness_in(self, database_url: str, currency: str) -> BlockHarness:
        options: dict[str, Any] = {"clock": ManualClock(START), **self.harness_options()}
        options.setdefault("merchant", Merchant("test-shop", "Test Shop", currency))
        return BlockHarness(
            self.block_class, database_url, config=self.config_for(currency), environ=self.environ, **options
        )

    @pytest.fixture
    def harness_in(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> Iterator[Callable[[str], BlockHarness]]:
        """``harness_in("USD")``: the block assembled for a merchant trading in that currency."""
        caplog.set_level(logging.DEBUG)
        made: list[BlockHarness] = []

        def make(currency: str) -> BlockHarness:
            bench = self.make_harness_in(database_url, currency)
            made.append(bench)
            return bench

        leaks: list[str] = []
        try:
            yield make
            for bench in made:
                leaks += secret_leaks(self.environ, bench, caplog.records)
        finally:
            for bench in made:
                bench.close()
        assert not leaks, "a secret from `environ` showed: " + "; ".join(leaks)

    @pytest.fixture(params=[0, 1], ids=["currency-1", "currency-2"])
    def currency(self, request: pytest.FixtureRequest) -> str:
        """Each of ``currencies`` in turn, for the tests where money is involved."""
        return self.currencies[int(request.param)]

    @pytest.fixture
    def harness(self, harness_in: Callable[[str], BlockHarness], currency: str) -> BlockHarness:
        """The block assembled for a merchant trading in ``currency``."""
        return harness_in(currency)

    @pytest.fixture
    def one_harness(self, harness_in: Callable[[str], BlockHarness]) -> BlockHarness:
        """For behaviour that involves no money: the first currency only."""
        return harness_in(self.currencies[0])


def call(
    harness: BlockHarness,
    spec: Callable[..., R],
    *args: Any,
    channel: str | None = "web",
    flow_id: str = "",
    **kwargs: Any,
) -> R:
    """Call hook ``spec`` on the block under test through the stack's hooks, in a flow context of its own."""
    with harness.context(channel, flow_id=flow_id) as ctx:
        result: R = harness.call(spec, ctx, *args, **kwargs)
        return result


def provides(harness: BlockHarness, spec: Callable[..., Any]) -> bool:
    """Whether the block under test implements an optional hook."""
    return harness.implements(spec)


def race(attempts: int, attempt: Callable[[int], R]) -> tuple[list[R], list[BaseException]]:
    """Run ``attempt(0..attempts-1)`` in as many threads, released together; their results and errors."""
    results: list[R] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    gate = threading.Barrier(attempts)

    def run(number: int) -> None:
        gate.wait()
        try:
            result = attempt(number)
        except BaseException as error:  # the caller decides which errors are allowed
            with lock:
                errors.append(error)
            return
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def only_refusals(errors: list[BaseException]) -> None:
    """Every error is a clean refusal; anything else is re-raised for the test report."""
    for error in errors:
        if not isinstance(error, REFUSALS):
            raise error
