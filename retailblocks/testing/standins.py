"""Stand-ins the harness assembles beside the block under test when the block does not provide a capability
the order flows need (a stack without inventory or payment does not assemble).

They take part in assembly exactly like any block (registration, routing, migrations), but a contract
never calls them: each hook refuses with :class:`StandInCalled`, so a test that reaches one by mistake
fails saying so instead of working on made-up data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn

import attrs

from retailblocks.errors import RetailBlocksError
from retailblocks.hookspecs import Capability, hookimpl
from retailblocks.hookspecs.blocks import Block

STAND_IN_INVENTORY = "kit-stand-in-inventory"
STAND_IN_PAYMENT = "kit-stand-in-payment"
DECLARED_NAMES = "kit-declared-names"
#: The payment method the payment stand-in declares; no block under test is expected to answer it.
STAND_IN_METHOD = "kit-stand-in"


class StandInCalled(RetailBlocksError):
    """A test reached a stand-in: the harness assembles it only so that the stack assembles."""


def _refuse(block: Block, hook: str) -> NoReturn:
    raise StandInCalled(
        f"{hook} reached {block.id!r}, a stand-in the test harness assembles only so that the stack has every "
        "capability the order flows need; give the harness a real block for it with `companions=`"
    )


class StandInInventory(Block):
    """Provides the inventory capability in name only (see the module's docstring)."""

    name = STAND_IN_INVENTORY
    capabilities = frozenset({Capability.INVENTORY})
    core_api = "1.0"
    description = "The test kit's stand-in for an inventory block; answers no calls."

    @hookimpl
    def inventory_available(self, skus: Sequence[str]) -> Mapping[str, int]:
        _refuse(self, "inventory_available")

    @hookimpl
    def inventory_reserve(
        self, demands: Sequence[Any], locations: Sequence[str], allow_split: bool, ttl: timedelta
    ) -> Any:
        _refuse(self, "inventory_reserve")

    @hookimpl
    def inventory_commit(self, reservation_id: str, order_id: str) -> None:
        _refuse(self, "inventory_commit")

    @hookimpl
    def inventory_release(self, reservation_id: str) -> None:
        _refuse(self, "inventory_release")

    @hookimpl
    def inventory_fulfil(self, order_id: str, parcels: Sequence[Any]) -> None:
        _refuse(self, "inventory_fulfil")

    @hookimpl
    def inventory_return(self, order_id: str, items: Sequence[Any], key: str) -> None:
        _refuse(self, "inventory_return")


class StandInPayment(Block):
    """Provides the payment capability in name only, for one method nothing else answers."""

    name = STAND_IN_PAYMENT
    capabilities = frozenset({Capability.PAYMENT})
    core_api = "1.0"
    payment_methods = (STAND_IN_METHOD,)
    description = "The test kit's stand-in for a payment block; answers no calls."

    @hookimpl
    def payment_authorize(self, method: str) -> Any:
        _refuse(self, "payment_authorize")

    @hookimpl
    def payment_status(self, method: str) -> Any:
        _refuse(self, "payment_status")

    @hookimpl
    def payment_capture(self, authorization: Any) -> Any:
        _refuse(self, "payment_capture")

    @hookimpl
    def payment_void(self, authorization: Any) -> None:
        _refuse(self, "payment_void")

    @hookimpl
    def payment_refund(self, authorization: Any) -> Any:
        _refuse(self, "payment_refund")


@attrs.frozen
class DeclaredNamesConfig:
    #: Names by kind (``{"location": [...], "tier": [...]}``), as :func:`stack_names` declares them.
    names: dict[str, list[str]] = attrs.field(factory=dict)


class DeclaredNames(Block):
    """Declares names the rest of a merchant's stack would (an inventory block's stock locations, a
    membership block's tiers), so that the configuration of the block under test may refer to them."""

    name = DECLARED_NAMES
    core_api = "1.0"
    Config = DeclaredNamesConfig
    description = "The test kit's stand-in for the names other blocks of a stack declare."
    config: DeclaredNamesConfig

    @hookimpl
    def stack_names(self) -> Mapping[str, Sequence[str]]:
        return {kind: list(values) for kind, values in self.config.names.items()}


#: The stand-in for each capability the order flows cannot run without.
STAND_INS: Mapping[Capability, type[Block]] = {
    Capability.INVENTORY: StandInInventory,
    Capability.PAYMENT: StandInPayment,
}
