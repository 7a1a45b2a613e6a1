"""The typed face over the assembled blocks: every hook call the core makes goes through :class:`Hooks`.

A call names the hook by its specification function, so mypy checks every argument and the result against
the contract itself, and nothing here changes when a hook is added::

    reservation = hooks.call(inventory.inventory_reserve, ctx, demands=..., locations=..., ...)
    for block_id, quotes in hooks.each(logistics.logistics_quote, ctx, lines=..., ...): ...

How a call is dispatched is what the specification's marker declares (hookspecs._markers.contract): to the
capability's one provider, to the block a payment method or an existing object names, or to every
implementer in manifest order (``tryfirst``/``trylast`` honoured). A routed call is one dictionary look-up
and one Python call — no fan-out through pluggy — and is made exactly as pluggy would make it (the
implementation's own argument names, the block's failures wrapped in :class:`BlockFailure`).
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import attrs
import pluggy
import sqlalchemy as sa

from retailblocks.assembly.stacking import StackingPolicy
from retailblocks.context import FlowContext
from retailblocks.errors import AssemblyError, BlockFailure, InvalidValue, RetailBlocksError
from retailblocks.hookspecs import SPECIFICATIONS, Dispatch, contract_of
from retailblocks.hookspecs.blocks import Block

P = ParamSpec("P")
R = TypeVar("R")

#: Ids under which the core registers blocks of its own that take part in dispatch (event listeners).
CORE_DEFAULT_BLOCKS = frozenset({"fusion"})


@attrs.frozen
class CallRoutes:
    """Which block answers which call; printed by ``blocks assemble`` and written to the lock file."""

    #: one-provider hook → block id
    providers: Mapping[str, str]
    #: payment method → block id
    payment_methods: Mapping[str, str]
    #: every-block and routed hook → implementing block ids, in call order (manifest order, tryfirst and
    #: trylast applied)
    contributors: Mapping[str, tuple[str, ...]]
    #: how the marketing blocks' adjustments combine (the pricing flow follows it, not ``contributors``)
    marketing: StackingPolicy = attrs.field(factory=StackingPolicy)


@attrs.frozen
class _Hook:
    name: str
    argnames: tuple[str, ...]
    dispatch: Dispatch
    route: str | None
    #: block id → (implementation, its argument names)
    impls: Mapping[str, tuple[Callable[..., Any], tuple[str, ...]]]
    #: implementers in call order (every-block and routed hooks)
    order: tuple[str, ...]
    provider: str | None


class Hooks:
    def __init__(self, pm: pluggy.PluginManager, blocks: Mapping[str, Block], routes: CallRoutes, *, trace: bool):
        self.routes = routes
        self._trace = trace
        self._hooks: dict[Callable[..., Any], _Hook] = {}
        for name, spec in SPECIFICATIONS.items():
            declared = contract_of(spec)
            impls: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}
            caller = getattr(pm.hook, name, None)
            for impl in caller.get_hookimpls() if caller is not None else ():
                block_id = pm.get_name(impl.plugin)
                # The core's own default blocks (the fusion timeline) answer beside the manifest's.
                if block_id is None or (block_id not in blocks and block_id not in CORE_DEFAULT_BLOCKS):
                    continue
                impls[block_id] = (impl.function, tuple(impl.argnames))
            ordered = routes.contributors.get(name, ())
            # Routing lists the manifest's blocks; the core's default listeners come after them.
            order = ordered + tuple(block for block in impls if block not in ordered)
            self._hooks[spec] = _Hook(
                name=name,
                argnames=tuple(inspect.signature(spec).parameters),
                dispatch=declared.dispatch,
                route=declared.route,
                impls=impls,
                order=order,
                provider=routes.providers.get(name),
            )

    # -- what answers what ------------------------------------------------------------------------

    def _hook(self, spec: Callable[..., Any]) -> _Hook:
        try:
            return self._hooks[spec]
        except KeyError:
            raise TypeError(f"{getattr(spec, '__name__', spec)!r} is not a hook specification") from None

    def provides(self, spec: Callable[..., Any]) -> bool:
        """Whether any block of this stack answers ``spec``."""
        return bool(self._hook(spec).impls)

    def implementers(self, spec: Callable[..., Any]) -> tuple[str, ...]:
        """The blocks that implement ``spec``, in the order every-block calls visit them."""
        return self._hook(spec).order

    def payment_block(self, method: str) -> str:
        try:
            return self.routes.payment_methods[method]
        except KeyError:
            known = ", ".join(sorted(self.routes.payment_methods)) or "none"
            raise InvalidValue(f"no payment block accepts method {method!r} (this stack accepts: {known})") from None

    # -- calls ------------------------------------------------------------------------------------

    def call(self, spec: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call a one-provider or routed hook; AssemblyError if no block of this stack answers it."""
        hook = self._hook(spec)
        arguments = _arguments(hook, args, kwargs)
        return self._invoke(hook, self._target(hook, arguments), arguments)  # type: ignore[no-any-return]

    def maybe(self, spec: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R | None:
        """Call an optional hook: None when no block answers it (for a routed hook, when the block the
        call is routed to does not implement it)."""
        hook = self._hook(spec)
        arguments = _arguments(hook, args, kwargs)
        if hook.dispatch is Dispatch.ONE_PROVIDER and hook.provider is None:
            return None
        block_id = self._target(hook, arguments)
        if block_id not in hook.impls:
            return None
        return self._invoke(hook, block_id, arguments)  # type: ignore[no-any-return]

    def each(self, spec: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> list[tuple[str, R]]:
        """Call every implementer of an every-block hook in order; each block's answer with its id."""
        hook = self._hook(spec)
        arguments = _arguments(hook, args, kwargs)
        return [(block_id, self._invoke(hook, block_id, arguments)) for block_id in hook.order]

    def at(self, block_id: str, spec: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``spec`` on the block ``block_id`` (a listener, the block a shipment belongs to)."""
        hook = self._hook(spec)
        return self._invoke(hook, block_id, _arguments(hook, args, kwargs))  # type: ignore[no-any-return]

    def _target(self, hook: _Hook, arguments: dict[str, Any]) -> str:
        if hook.dispatch is Dispatch.ONE_PROVIDER:
            if hook.provider is None:
                raise AssemblyError(f"no block in this stack answers {hook.name}")
            return hook.provider
        if hook.dispatch is Dispatch.ROUTED and hook.route is not None:
            named = arguments[hook.route]
            return self.payment_block(named) if isinstance(named, str) else str(named.block)
        raise TypeError(f"{hook.name} is dispatched to {hook.dispatch.value}: call it with each() or at()")

    def _invoke(self, hook: _Hook, block_id: str, arguments: dict[str, Any]) -> Any:
        try:
            function, argnames = hook.impls[block_id]
        except KeyError:
            raise AssemblyError(f"block {block_id!r} does not implement {hook.name}", block=block_id) from None
        ctx = arguments.get("ctx")
        if isinstance(ctx, FlowContext):
            outer = ctx.current_block
            ctx.current_block = block_id
        started = time.perf_counter() if self._trace else 0.0
        try:
            return function(*[arguments[name] for name in argnames])
        except (RetailBlocksError, sa.exc.OperationalError):
            # The database's own conditions (a lock wait that timed out, a lost connection) are the
            # environment's, not the block's: they pass through as they are, so a flow can tell them apart.
            raise
        except Exception as error:
            raise BlockFailure(block_id, hook.name, error) from error
        finally:
            if isinstance(ctx, FlowContext):
                ctx.current_block = outer
            if self._trace:
                elapsed = (time.perf_counter() - started) * 1000
                print(f"[retailblocks trace] {block_id}.{hook.name} {elapsed:.2f} ms", file=sys.stderr)


def _arguments(hook: _Hook, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    arguments = dict(zip(hook.argnames, args, strict=False))
    arguments.update(kwargs)
    return arguments
