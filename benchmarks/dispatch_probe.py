"""Measure the hook face's own cost: time spent dispatching a hook call, excluding the blocks' code.

The probe replaces, on one ``Hooks`` instance only, every method of the face (``call``, ``maybe``,
``each``, ``at``, ``_invoke``, ``implementers``, ``provides`` …) and every registered implementation
function with thin timing wrappers. Time from entering the relay until the implementation
starts, and from the implementation's return until the relay returns, is dispatch: argument mapping, the
routing look-ups, setting ``ctx.current_block``, the ``try``/``except`` translating failures. Time inside
an implementation is the block's, even when the block calls back into the relay (that nested call's own
dispatch is counted again as dispatch).

The wrappers cost a little themselves, and part of that lands between the clock readings that count as
dispatch; :func:`calibrate` measures that bias on a no-op chain so the report can subtract it.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from retailblocks.assembly.hooks import Hooks

_RELAY = 0
_IMPL = 1


@dataclass
class DispatchFigures:
    #: Seconds counted as dispatch (uncorrected).
    dispatch: float
    #: Seconds inside the blocks' implementations.
    implementation: float
    #: Outermost relay entries (one per hook call the core or a block made).
    entries: int
    #: Relay methods entered while already inside the relay (typed method → ``_one`` → ``call``).
    nested: int
    #: Implementation functions run.
    impl_calls: int
    #: Dispatch seconds by the relay method the core (or a block) called.
    by_method: dict[str, float]


class DispatchProbe:
    """Timing wrappers around one relay's methods and implementations; single-threaded use."""

    def __init__(self, relay: Hooks):
        self.relay = relay
        self._state = threading.local()
        self._dispatch = 0.0
        self._implementation = 0.0
        self._entries = 0
        self._nested = 0
        self._impl_calls = 0
        self._segment_start = 0.0
        self._by_method: dict[str, float] = defaultdict(float)
        self._saved_impls: dict[str, dict[str, Any]] = {}
        self._patched: list[str] = []

    def figures(self) -> DispatchFigures:
        return DispatchFigures(
            self._dispatch, self._implementation, self._entries, self._nested, self._impl_calls, dict(self._by_method)
        )

    def reset(self) -> None:
        self._dispatch = self._implementation = 0.0
        self._entries = self._nested = self._impl_calls = 0
        self._by_method.clear()

    def __enter__(self) -> DispatchProbe:
        relay = self.relay
        for name, value in vars(Hooks).items():
            if name.startswith("__") or not callable(value):
                continue
            # Instance attributes shadow the class's methods, and the relay calls ``self._one`` and
            # ``self.call`` through ``self``, so the inner hops are seen too.
            setattr(relay, name, self._wrap_relay(getattr(relay, name)))
            self._patched.append(name)
        impls: dict[str, dict[str, Any]] = {hook.name: hook.impls for hook in relay._hooks.values()}  # type: ignore[misc]
        for hook_name, by_block in impls.items():
            self._saved_impls[hook_name] = dict(by_block)
            for block_id, (function, argnames) in by_block.items():
                by_block[block_id] = (self._wrap_impl(function), argnames)
        return self

    def __exit__(self, *_exc: object) -> None:
        for name in self._patched:
            delattr(self.relay, name)
        self._patched.clear()
        impls: dict[str, dict[str, Any]] = {hook.name: hook.impls for hook in self.relay._hooks.values()}  # type: ignore[misc]
        for hook_name, saved in self._saved_impls.items():
            impls[hook_name].update(saved)
        self._saved_impls.clear()

    def _stack(self) -> list[tuple[int, str]]:
        stack: list[tuple[int, str]] | None = getattr(self._state, "stack", None)
        if stack is None:
            stack = self._state.stack = []
        return stack

    def _wrap_relay(self, method: Callable[..., Any]) -> Callable[..., Any]:
        probe = self
        name = method.__name__

        def relay_method(*args: Any, **kwargs: Any) -> Any:
            stack = probe._stack()
            outermost = not stack or stack[-1][0] == _IMPL
            if outermost:
                probe._entries += 1
                probe._segment_start = time.perf_counter()
                stack.append((_RELAY, name))
            else:
                probe._nested += 1
                stack.append((_RELAY, stack[-1][1]))
            try:
                return method(*args, **kwargs)
            finally:
                stack.pop()
                if outermost:
                    spent = time.perf_counter() - probe._segment_start
                    probe._dispatch += spent
                    probe._by_method[name] += spent

        return relay_method

    def _wrap_impl(self, function: Callable[..., Any]) -> Callable[..., Any]:
        probe = self

        def implementation(*args: Any) -> Any:
            entered = time.perf_counter()
            stack = probe._stack()
            owner = stack[-1][1] if stack else "?"
            spent = entered - probe._segment_start
            probe._dispatch += spent
            probe._by_method[owner] += spent
            probe._impl_calls += 1
            stack.append((_IMPL, owner))
            try:
                return function(*args)
            finally:
                stack.pop()
                left = time.perf_counter()
                probe._implementation += left - entered
                # A nested relay call inside the implementation moved the segment start; dispatch resumes now.
                probe._segment_start = left

        return implementation


@dataclass
class Calibration:
    """Seconds of wrapper cost the probe counts as dispatch, per outermost entry and per nested hop."""

    per_entry: float
    per_nested: float


def calibrate(iterations: int = 200_000) -> Calibration:
    """Run the probe's wrappers around a chain that does no dispatch work and see what it reports."""

    class Chain:
        def outer(self) -> Any:
            return self.inner()

        def inner(self) -> Any:
            return self.impl()

        def impl(self) -> Any:
            return None

    def measure(hops: int) -> float:
        chain = Chain()
        probe = DispatchProbe.__new__(DispatchProbe)
        DispatchProbe.__init__(probe, relay=None)  # type: ignore[arg-type]
        impl = probe._wrap_impl(chain.impl)
        inner = probe._wrap_relay(impl)
        outer = probe._wrap_relay(inner) if hops == 2 else inner
        best = float("inf")
        for _ in range(5):  # the machine is shared: keep the least disturbed of a few rounds
            probe.reset()
            for _ in range(iterations // 5):
                outer()
            best = min(best, probe._dispatch / (iterations // 5))
        return best

    one = measure(1)
    two = measure(2)
    return Calibration(per_entry=one, per_nested=max(two - one, 0.0))


def corrected_dispatch(figures: DispatchFigures, calibration: Calibration) -> float:
    """Dispatch seconds with the probe's own cost taken out (never below zero)."""
    bias = figures.entries * calibration.per_entry + figures.nested * calibration.per_nested
    return max(figures.dispatch - bias, 0.0)
