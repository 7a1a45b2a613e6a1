"""Pluggy's implementation options: honoured as pluggy documents them, or refused at assembly by name."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from retailblocks import Block, Capability, hookimpl
from retailblocks.errors import AssemblyError
from retailblocks.hookspecs import Dispatch, contract_of, dispatch_of, marketing, specifications
from retailblocks.hookspecs import inventory as inventory_hooks
from retailblocks.model import Member, Money, PriceAdjustment, PricedLine
from retailblocks.stack import plan
from tests.assembly.test_contract import INSTALLED, MiniInventory, info, manifest


class _Marketing(Block):
    capabilities = frozenset({Capability.MARKETING})

    def made(self) -> list[PriceAdjustment]:
        return [PriceAdjustment(self.id, self.name, "order", Money(100, "CNY"), "test", "m")]  # type: ignore[arg-type]

    @hookimpl
    def marketing_place(self) -> None: ...

    @hookimpl
    def marketing_release(self) -> None: ...


class PlainMarketing(_Marketing):
    name = "plain-marketing"

    @hookimpl
    def marketing_adjustments(self, existing: Sequence[PriceAdjustment]) -> list[PriceAdjustment]:
        return self.made()


class FirstMarketing(_Marketing):
    name = "first-marketing"

    @hookimpl(tryfirst=True)
    def marketing_adjustments(self, existing: Sequence[PriceAdjustment]) -> list[PriceAdjustment]:
        return self.made()


class LastMarketing(_Marketing):
    name = "last-marketing"

    @hookimpl(trylast=True)
    def marketing_adjustments(self, existing: Sequence[PriceAdjustment]) -> list[PriceAdjustment]:
        return self.made()


class WrapperMarketing(_Marketing):
    name = "wrapper-marketing"

    @hookimpl(wrapper=True)
    def marketing_adjustments(
        self, lines: Sequence[PricedLine], shipping: Money, member: Member | None
    ) -> Generator[None, list[PriceAdjustment], list[PriceAdjustment]]:
        found = yield
        return found


class OldWrapperMarketing(_Marketing):
    name = "old-wrapper-marketing"

    @hookimpl(hookwrapper=True)
    def marketing_adjustments(self) -> Generator[None, Any, None]:
        yield


class EagerInventory(MiniInventory):
    name = "eager-inventory"

    @hookimpl(tryfirst=True)
    def inventory_available(self, skus: Sequence[str]) -> dict[str, int]:
        return dict.fromkeys(skus, 1)


OPTIONS_INSTALLED = {
    **INSTALLED,
    **{
        i.name: i
        for i in map(
            info,
            [PlainMarketing, FirstMarketing, LastMarketing, WrapperMarketing, OldWrapperMarketing, EagerInventory],
        )
    },
}
BASE = "  - use: mini-inventory\n  - use: mini-pay\n"


def test_a_wrapper_implementation_is_refused_with_its_block_and_hook(tmp_path: Path) -> None:
    for block in ("wrapper-marketing", "old-wrapper-marketing"):
        with pytest.raises(AssemblyError) as error:
            plan(manifest(tmp_path, f"{BASE}  - use: {block}\n"), installed=OPTIONS_INSTALLED)
        message = str(error.value)
        assert block in message and "marketing_adjustments" in message and "wrapper" in message
        assert error.value.block == block


def test_tryfirst_on_a_hook_one_block_answers_is_refused_with_its_name(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError) as error:
        plan(manifest(tmp_path, "  - use: eager-inventory\n  - use: mini-pay\n"), installed=OPTIONS_INSTALLED)
    message = str(error.value)
    assert "eager-inventory" in message and "inventory_available" in message and "tryfirst" in message


def test_tryfirst_and_trylast_order_every_block_hooks_as_pluggy_documents(tmp_path: Path) -> None:
    # Manifest order: last, plain, first — tryfirst moves to the front, trylast to the back.
    blocks = f"{BASE}  - use: last-marketing\n  - use: plain-marketing\n  - use: first-marketing\n"
    the_plan = plan(manifest(tmp_path, blocks), installed=OPTIONS_INSTALLED)
    order = the_plan.hooks.implementers(marketing.marketing_adjustments)
    assert order == ("first-marketing", "plain-marketing", "last-marketing")
    # Hooks nobody ordered keep the manifest's order.
    assert the_plan.hooks.implementers(marketing.marketing_release) == (
        "last-marketing",
        "plain-marketing",
        "first-marketing",
    )


def test_single_answer_hooks_are_firstresult_for_pluggy_too(tmp_path: Path) -> None:
    """A one-provider or routed hook has one answer, in the core's face and in pluggy's own calls."""
    the_plan = plan(manifest(tmp_path, BASE), installed=OPTIONS_INSTALLED)
    assert the_plan.plugin_manager.hook.inventory_available(ctx=None, skus=["A"]) == {"A": 0}
    for module in (inventory_hooks, marketing):
        for name, spec in specifications(module).items():
            single = contract_of(spec).dispatch is not Dispatch.EVERY_BLOCK
            caller = getattr(the_plan.plugin_manager.hook, name)
            assert bool(caller.spec.opts.get("firstresult")) is single, name


def test_dispatch_is_what_the_marker_declares() -> None:
    assert dispatch_of("logistics_arrange") is Dispatch.ROUTED  # the block that quoted books it
    assert dispatch_of("inventory_reserve") is Dispatch.ONE_PROVIDER
    assert dispatch_of("marketing_adjustments") is Dispatch.EVERY_BLOCK
