"""The contracts: one module of hook specifications per capability, plus lifecycle hooks.

This module declares, in one place, which hooks a block must implement to provide a capability, and how
each hook is dispatched:

* ``ONE_PROVIDER`` hooks are answered by exactly one block, which the core routes to (for payment, by
  method; for calls on an existing payment or shipment, to the block that made it);
* ``EVERY_BLOCK`` hooks collect the contributions of every block that implements them.
"""

from __future__ import annotations

import enum
from types import ModuleType

from retailblocks.hookspecs import inventory, lifecycle, logistics, marketing, membership, payment
from retailblocks.hookspecs._markers import PROJECT, hookimpl, hookspec


class Capability(enum.StrEnum):
    INVENTORY = "inventory"
    PAYMENT = "payment"
    MEMBERSHIP = "membership"
    LOGISTICS = "logistics"
    MARKETING = "marketing"


SPEC_MODULES: dict[str, ModuleType] = {
    "lifecycle": lifecycle,
    Capability.INVENTORY: inventory,
    Capability.PAYMENT: payment,
    Capability.MEMBERSHIP: membership,
    Capability.LOGISTICS: logistics,
    Capability.MARKETING: marketing,
}

#: The hooks a block must implement to provide each capability.
REQUIRED_HOOKS: dict[Capability, frozenset[str]] = {
    Capability.INVENTORY: frozenset(
        {
            "inventory_available",
            "inventory_reserve",
            "inventory_commit",
            "inventory_release",
            "inventory_fulfil",
            "inventory_return",
        }
    ),
    Capability.PAYMENT: frozenset(
        {
            "payment_authorize",
            "payment_status",
            "payment_capture",
            "payment_void",
            "payment_refund",
        }
    ),
    Capability.MEMBERSHIP: frozenset(
        {
            "membership_identify",
            "membership_member",
            "membership_earn",
            "membership_reverse",
        }
    ),
    Capability.LOGISTICS: frozenset({"logistics_quote", "logistics_arrange", "logistics_cancel"}),
    Capability.MARKETING: frozenset({"marketing_adjustments", "marketing_redeem", "marketing_release"}),
}

#: Capabilities the order flows cannot run without; the others are optional.
FLOW_CAPABILITIES: frozenset[Capability] = frozenset({Capability.INVENTORY, Capability.PAYMENT})


class Dispatch(enum.StrEnum):
    ONE_PROVIDER = "one provider"
    BY_METHOD = "routed by payment method"
    EVERY_BLOCK = "every block"


def dispatch_of(hook_name: str) -> Dispatch:
    """How the core dispatches ``hook_name``."""
    if hook_name.startswith("payment_"):
        return Dispatch.BY_METHOD
    if hook_name.startswith(("stack_", "marketing_")) or hook_name == "logistics_quote":
        return Dispatch.EVERY_BLOCK
    if hook_name in ("logistics_arrange", "logistics_cancel", "logistics_track"):
        # Routed to the block that quoted or booked; several logistics blocks may coexist.
        return Dispatch.EVERY_BLOCK
    return Dispatch.ONE_PROVIDER


def capability_of(hook_name: str) -> str:
    prefix = hook_name.split("_", 1)[0]
    return "lifecycle" if prefix == "stack" else prefix


def all_hook_names() -> list[str]:
    names: list[str] = []
    for module in SPEC_MODULES.values():
        names.extend(
            name for name, value in vars(module).items() if callable(value) and hasattr(value, f"{PROJECT}_spec")
        )
    return sorted(names)


__all__ = [
    "FLOW_CAPABILITIES",
    "PROJECT",
    "REQUIRED_HOOKS",
    "SPEC_MODULES",
    "Capability",
    "Dispatch",
    "all_hook_names",
    "capability_of",
    "dispatch_of",
    "hookimpl",
    "hookspec",
]
