"""Deciding which block answers which call, and rejecting stacks where that is ambiguous or impossible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pluggy

from retailblocks.assembly.hooks import CallRoutes
from retailblocks.assembly.stacking import resolve_stacking
from retailblocks.errors import AssemblyError
from retailblocks.hookspecs import (
    FLOW_CAPABILITIES,
    REQUIRED_HOOKS,
    SUPERSEDED,
    Capability,
    Dispatch,
    capability_of,
    dispatch_of,
)
from retailblocks.hookspecs.reach import MEDIUMS
from retailblocks.manifest import Manifest, ManifestError, SourcePosition

if TYPE_CHECKING:
    from retailblocks.assembly.discovery import AssembledBlock


def implemented_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    callers = pm.get_hookcallers(plugin) or []
    return sorted(caller.name for caller in callers)


def deprecated_implementations(pm: pluggy.PluginManager, blocks: Sequence[AssembledBlock]) -> list[str]:
    """One sentence per deprecated hook a block implements (pluggy's ``warn_on_impl``): Python hides
    DeprecationWarnings outside ``__main__``, so ``blocks assemble`` tells the operator itself."""
    found = []
    for block in blocks:
        for caller in pm.get_hookcallers(block.instance) or []:
            warning = caller.spec.warn_on_impl if caller.spec is not None else None
            if warning is not None:
                found.append(f"block {block.entry.id!r} (distribution {block.info.distribution}): {warning}")
    return found


def plan_routing(
    manifest: Manifest,
    blocks: Sequence[AssembledBlock],
    pm: pluggy.PluginManager,
    *,
    core_payment_methods: Mapping[str, str] | None = None,
) -> CallRoutes:
    hooks_of = {b.entry.id: implemented_hooks(pm, b.instance) for b in blocks}
    for block in blocks:
        _check_declared_capabilities(block, hooks_of[block.entry.id])
    options = {b.entry.id: _impl_options(pm, b) for b in blocks}

    provided = {c for b in blocks for c in b.instance.capabilities}
    missing = sorted(c.value for c in FLOW_CAPABILITIES if c not in provided)
    if missing:
        where = blocks[0].entry.position.with_path("blocks") if blocks else SourcePosition(str(manifest.path))
        raise ManifestError.at(
            where,
            f"no block provides {', '.join(missing)}; the order flows need one (add a block to `blocks:` — "
            "`blocks plugins` lists what is installed)",
        )

    providers: dict[str, str] = {}
    contributors: dict[str, tuple[str, ...]] = {}
    all_hooks = sorted({hook for hooks in hooks_of.values() for hook in hooks})
    for hook in all_hooks:
        implementers = tuple(b.entry.id for b in blocks if hook in hooks_of[b.entry.id])
        kind = dispatch_of(hook)
        if kind is Dispatch.ONE_PROVIDER:
            if len(implementers) > 1:
                second = next(b for b in blocks if b.entry.id == implementers[1])
                raise ManifestError.at(
                    second.entry.position_of("use"),
                    f"blocks {', '.join(repr(i) for i in implementers)} all answer {hook}, which one block "
                    f"must answer; keep one {capability_of(hook)} provider in the manifest",
                )
            providers[hook] = implementers[0]
        else:
            # tryfirst/trylast as pluggy documents them: to the front or the back, manifest order otherwise.
            rank = {"tryfirst": 0, "": 1, "trylast": 2}
            contributors[hook] = tuple(sorted(implementers, key=lambda block_id: rank[options[block_id].get(hook, "")]))
    payment_methods = {**(core_payment_methods or {}), **_route_payment(manifest, blocks)}
    marketing = resolve_stacking(
        manifest,
        contributors.get("marketing_adjustments", ()),
        {b.entry.id: b.instance.exclusive for b in blocks},
    )
    return CallRoutes(
        providers=providers, payment_methods=payment_methods, contributors=contributors, marketing=marketing
    )


def _impl_options(pm: pluggy.PluginManager, block: AssembledBlock) -> dict[str, str]:
    """The ordering option ("tryfirst", "trylast" or "") of each of the block's implementations; an
    AssemblyError, naming the block and the hook, for an option the core cannot honour."""
    found: dict[str, str] = {}
    name, distribution = block.entry.use, block.info.distribution
    for caller in pm.get_hookcallers(block.instance) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not block.instance:
                continue
            hook = caller.name
            if impl.hookwrapper or impl.wrapper:
                raise AssemblyError(
                    f"block {name!r} (distribution {distribution}) implements {hook} as a wrapper "
                    "(wrapper=True or hookwrapper=True); the core calls each block's implementation itself, "
                    "routed or in manifest order, and runs no wrappers: implement the hook plainly",
                    block=name,
                    distribution=distribution,
                )
            order = "tryfirst" if impl.tryfirst else "trylast" if impl.trylast else ""
            if order and dispatch_of(hook) is not Dispatch.EVERY_BLOCK:
                raise AssemblyError(
                    f"block {name!r} (distribution {distribution}) marks {hook} {order}, but "
                    f"{hook} is answered by one block ({dispatch_of(hook).value}), so there is no order to "
                    "change: remove the option",
                    block=name,
                    distribution=distribution,
                )
            found[hook] = order
    return found


def _check_declared_capabilities(block: AssembledBlock, hooks: Sequence[str]) -> None:
    declared = set(block.instance.capabilities)
    name, distribution = block.entry.use, block.info.distribution
    # The older form of a superseded hook still counts (marketing_redeem for marketing_place).
    implemented = set(hooks) | {new for new, old in SUPERSEDED.items() if old in hooks}
    for capability in declared:
        absent = sorted(REQUIRED_HOOKS[Capability(capability)] - implemented)
        if absent:
            raise AssemblyError(
                f"block {name!r} (distribution {distribution}) declares capability {capability} but does "
                f"not implement {', '.join(absent)}",
                block=name,
                distribution=distribution,
            )
    undeclared = sorted(
        {capability_of(h) for h in hooks if capability_of(h) != "lifecycle"} - {str(c) for c in declared}
    )
    if undeclared:
        raise AssemblyError(
            f"block {name!r} (distribution {distribution}) implements hooks of {', '.join(undeclared)} "
            "without declaring the capability in `capabilities`",
            block=name,
            distribution=distribution,
        )
    if Capability.REACH in declared:
        unknown = sorted(set(block.instance.reach_mediums) - set(MEDIUMS))
        if not block.instance.reach_mediums or unknown:
            raise AssemblyError(
                f"reach block {name!r} (distribution {distribution}) must list the `reach_mediums` it sends, "
                f"among {', '.join(MEDIUMS)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
                block=name,
                distribution=distribution,
            )
    if Capability.PAYMENT in declared and not block.instance.payment_methods:
        raise AssemblyError(
            f"payment block {name!r} (distribution {distribution}) lists no `payment_methods`",
            block=name,
            distribution=distribution,
        )


def _route_payment(manifest: Manifest, blocks: Sequence[AssembledBlock]) -> dict[str, str]:
    offered: dict[str, list[str]] = {}
    payment_blocks = {b.entry.id: b for b in blocks if Capability.PAYMENT in b.instance.capabilities}
    for block_id, block in payment_blocks.items():
        for method in block.instance.payment_methods:
            offered.setdefault(method, []).append(block_id)
    routes: dict[str, str] = {}
    for method, block_id in manifest.routing.payment.items():
        where = manifest.routing.position_of(method)
        if block_id not in payment_blocks:
            problem = (
                f"payment method {method!r} is routed to {block_id!r}, which is not a payment block of this "
                f"manifest (payment blocks: {', '.join(payment_blocks) or 'none'})"
            )
            if where is None:
                raise AssemblyError(problem)
            raise ManifestError.at(where, problem)
        if block_id not in offered.get(method, []):
            methods = ", ".join(payment_blocks[block_id].instance.payment_methods)
            problem = f"block {block_id!r} does not accept payment method {method!r} (it accepts: {methods})"
            if where is None:
                raise AssemblyError(problem)
            raise ManifestError.at(where, problem)
        routes[method] = block_id
    for method, block_ids in sorted(offered.items()):
        if method in routes:
            continue
        if len(block_ids) > 1:
            raise ManifestError.at(
                payment_blocks[block_ids[1]].entry.position_of("use"),
                f"payment method {method!r} is offered by several blocks ({', '.join(block_ids)}); say which one "
                f"answers it under `routing: payment: {{{method}: <block id>}}` in the manifest",
            )
        routes[method] = block_ids[0]
    return routes
