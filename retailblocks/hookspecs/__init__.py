"""The contracts: one module of hook specifications per capability, plus lifecycle hooks.

Each specification's marker (:func:`contract`) says how the core dispatches the hook and whether a
provider of its capability must implement it; everything else here is derived from the markers:

* ``ONE_PROVIDER`` hooks are answered by exactly one block, the capability's provider;
* ``ROUTED`` hooks by one block chosen per call: by payment method, or the block that made the
  authorization, quote or shipment the call is about;
* ``EVERY_BLOCK`` hooks collect the contributions of every block that implements them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from types import ModuleType
from typing import Any

from retailblocks.hookspecs import inventory, lifecycle, logistics, marketing, membership, payment, reach
from retailblocks.hookspecs._markers import (
    CONTRACT_ATTRIBUTE,
    PROJECT,
    Contract,
    Dispatch,
    contract,
    contract_of,
    hookimpl,
    hookspec,
)
from retailblocks.hookspecs.lifecycle import AsgiApp


class Capability(enum.StrEnum):
    INVENTORY = "inventory"
    PAYMENT = "payment"
    MEMBERSHIP = "membership"
    LOGISTICS = "logistics"
    MARKETING = "marketing"
    REACH = "reach"


SPEC_MODULES: dict[str, ModuleType] = {
    "lifecycle": lifecycle,
    Capability.INVENTORY: inventory,
    Capability.PAYMENT: payment,
    Capability.MEMBERSHIP: membership,
    Capability.LOGISTICS: logistics,
    Capability.MARKETING: marketing,
    Capability.REACH: reach,
}


def specifications(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The hook specifications a contract module declares, by name."""
    return {
        name: value
        for name, value in vars(module).items()
        if callable(value) and getattr(value, CONTRACT_ATTRIBUTE, None) is not None
    }


#: Every hook specification, by name, and the capability (or "lifecycle") whose module declares it.
SPECIFICATIONS: dict[str, Callable[..., Any]] = {
    name: spec for module in SPEC_MODULES.values() for name, spec in specifications(module).items()
}
_CAPABILITY_OF: dict[str, str] = {
    name: str(capability) for capability, module in SPEC_MODULES.items() for name in specifications(module)
}

#: The hooks a block must implement to provide each capability (derived from the specifications' markers).
REQUIRED_HOOKS: dict[Capability, frozenset[str]] = {
    capability: frozenset(name for name, spec in specifications(module).items() if contract_of(spec).required)
    for capability, module in SPEC_MODULES.items()
    if isinstance(capability, Capability)
}

#: Hooks that replace an older one, and the one each replaces: a block implementing the older instead
#: still satisfies the requirement (the core calls the old form; pluggy warns it is deprecated).
SUPERSEDED: dict[str, str] = {
    name: found for name, spec in SPECIFICATIONS.items() if (found := contract_of(spec).supersedes) is not None
}

#: Capabilities the order flows cannot run without; the others are optional.
FLOW_CAPABILITIES: frozenset[Capability] = frozenset({Capability.INVENTORY, Capability.PAYMENT})


def dispatch_of(hook_name: str) -> Dispatch:
    """How the core dispatches ``hook_name``, as its specification's marker says."""
    return contract_of(SPECIFICATIONS[hook_name]).dispatch


def capability_of(hook_name: str) -> str:
    """The capability whose contract declares ``hook_name`` ("lifecycle" for the stack's own hooks)."""
    return _CAPABILITY_OF.get(hook_name) or hook_name.split("_", 1)[0]


def all_hook_names() -> list[str]:
    return sorted(SPECIFICATIONS)


__all__ = [
    "FLOW_CAPABILITIES",
    "PROJECT",
    "REQUIRED_HOOKS",
    "SPECIFICATIONS",
    "SPEC_MODULES",
    "SUPERSEDED",
    "AsgiApp",
    "Capability",
    "Contract",
    "Dispatch",
    "all_hook_names",
    "capability_of",
    "contract",
    "contract_of",
    "dispatch_of",
    "hookimpl",
    "hookspec",
    "specifications",
]
