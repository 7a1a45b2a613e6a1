"""The block contract: what assembly accepts and what it rejects, with the culprit named."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from retailblocks import CORE_API_VERSION, Block, Capability, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.errors import AssemblyError, OutOfStock
from retailblocks.hookspecs import REQUIRED_HOOKS, SPEC_MODULES, all_hook_names
from retailblocks.manifest import ManifestError
from retailblocks.model import Money, PaymentAuthorization, PaymentCapture, PaymentRefund, Reservation, StockDemand
from retailblocks.stack import plan


class MiniInventory(Block):
    """Implements the inventory contract without state: enough to test assembly, not a real block."""

    name = "mini-inventory"
    capabilities = frozenset({Capability.INVENTORY})

    @hookimpl
    def inventory_available(self, skus: Sequence[str]) -> Mapping[str, int]:
        return dict.fromkeys(skus, 0)

    @hookimpl
    def inventory_reserve(
        self, demands: Sequence[StockDemand], locations: Sequence[str], allow_split: bool, ttl: timedelta
    ) -> Reservation:
        raise OutOfStock("nothing here")

    @hookimpl
    def inventory_commit(self, reservation_id: str, order_id: str) -> None: ...

    @hookimpl
    def inventory_release(self, reservation_id: str) -> None: ...

    @hookimpl
    def inventory_fulfil(self, order_id: str) -> None: ...

    @hookimpl
    def inventory_return(self, order_id: str) -> None: ...


class MiniPay(Block):
    name = "mini-pay"
    capabilities = frozenset({Capability.PAYMENT})
    payment_methods = ("card",)

    @hookimpl
    def payment_authorize(self, amount: Money) -> PaymentAuthorization:
        return PaymentAuthorization("a", self.id, "card", amount)

    @hookimpl
    def payment_status(self) -> None:
        return None

    @hookimpl
    def payment_capture(self, amount: Money) -> PaymentCapture:
        return PaymentCapture("c", "a", amount)

    @hookimpl
    def payment_void(self) -> None: ...

    @hookimpl
    def payment_refund(self, amount: Money) -> PaymentRefund:
        return PaymentRefund("r", "a", amount)


class MisspelledPay(MiniPay):
    name = "misspelled-pay"

    @hookimpl
    def payment_captur(self, amount: Money) -> None:  # the typo a block author makes
        ...


class FutureInventory(MiniInventory):
    name = "future-inventory"
    core_api = "2.0"


class NewerMinorInventory(MiniInventory):
    name = "newer-inventory"
    core_api = "1.9"


class SecondInventory(MiniInventory):
    name = "second-inventory"


class IncompletePay(Block):
    name = "incomplete-pay"
    capabilities = frozenset({Capability.PAYMENT})
    payment_methods = ("card",)

    @hookimpl
    def payment_authorize(self, amount: Money) -> None: ...


@attrs.frozen
class StrictConfig:
    limit: int


class ConfiguredPay(MiniPay):
    name = "configured-pay"
    Config = StrictConfig


def info(cls: type[Block], distribution: str = "acme-blocks", version: str = "1.2.0") -> BlockInfo:
    return BlockInfo(cls.name, distribution, version, f"tests:{cls.__name__}", block_class=cls)


INSTALLED = {
    i.name: i
    for i in map(
        info,
        [
            MiniInventory,
            MiniPay,
            MisspelledPay,
            FutureInventory,
            NewerMinorInventory,
            SecondInventory,
            IncompletePay,
            ConfiguredPay,
        ],
    )
}


def manifest(tmp_path: Path, blocks: str, extra: str = "") -> Path:
    path = tmp_path / "blocks.yaml"
    path.write_text(
        "version: 1\nmerchant: {id: m, name: M, currency: CNY}\nchannels: [{id: web, type: online}]\n"
        f"blocks:\n{blocks}{extra}",
        encoding="utf-8",
    )
    return path


def test_a_minimal_stack_plans(tmp_path: Path) -> None:
    the_plan = plan(manifest(tmp_path, "  - use: mini-inventory\n  - use: mini-pay\n"), installed=INSTALLED)
    assert the_plan.hooks.routes.providers["inventory_reserve"] == "mini-inventory"
    # The core answers orders a marketplace collected in every stack (retailblocks.connectors).
    assert the_plan.hooks.routes.payment_methods == {"card": "mini-pay", "marketplace": "connectors"}
    assert not (tmp_path / ".blocks").exists()


def test_a_misspelled_hook_is_rejected_naming_block_and_hook(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError) as error:
        plan(manifest(tmp_path, "  - use: mini-inventory\n  - use: misspelled-pay\n"), installed=INSTALLED)
    message = str(error.value)
    assert "misspelled-pay" in message and "payment_captur" in message and "acme-blocks" in message


def test_another_major_core_api_is_rejected_naming_both_versions(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as error:
        plan(manifest(tmp_path, "  - use: future-inventory\n  - use: mini-pay\n"), installed=INSTALLED)
    assert "2.0" in str(error.value) and CORE_API_VERSION in str(error.value)
    assert "blocks[0].use" in str(error.value)


def test_a_newer_minor_core_api_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=rf"1\.9.*newer than the core API {re.escape(CORE_API_VERSION)}"):
        plan(manifest(tmp_path, "  - use: newer-inventory\n  - use: mini-pay\n"), installed=INSTALLED)


def test_two_providers_of_a_one_provider_hook_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r":6:\d+: blocks\[1\]\.use: .*all answer inventory_"):
        plan(
            manifest(tmp_path, "  - use: mini-inventory\n  - use: second-inventory\n  - use: mini-pay\n"),
            installed=INSTALLED,
        )


def test_two_payment_blocks_for_one_method_need_routing(tmp_path: Path) -> None:
    blocks = "  - use: mini-inventory\n  - use: mini-pay\n  - use: mini-pay\n    id: backup-pay\n"
    with pytest.raises(ManifestError, match=r"blocks\[2\]\.use: .*routing: payment"):
        plan(manifest(tmp_path, blocks), installed=INSTALLED)
    routed = plan(manifest(tmp_path, blocks, "routing:\n  payment: {card: backup-pay}\n"), installed=INSTALLED)
    assert routed.hooks.routes.payment_methods == {"card": "backup-pay", "marketplace": "connectors"}


def test_routing_to_a_block_that_does_not_take_the_method_is_placed(tmp_path: Path) -> None:
    blocks = "  - use: mini-inventory\n  - use: mini-pay\n"
    with pytest.raises(ManifestError) as error:
        plan(manifest(tmp_path, blocks, "routing:\n  payment: {cash: mini-pay}\n"), installed=INSTALLED)
    assert "routing.payment.cash" in str(error.value) and ":8:" in str(error.value)


def test_a_capability_without_its_required_hooks_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match=r"incomplete-pay.*payment_capture"):
        plan(manifest(tmp_path, "  - use: mini-inventory\n  - use: incomplete-pay\n"), installed=INSTALLED)


def test_flows_need_inventory_and_payment(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no block provides payment"):
        plan(manifest(tmp_path, "  - use: mini-inventory\n"), installed=INSTALLED)


def test_a_block_whose_import_raises_is_reported_by_name(tmp_path: Path) -> None:
    broken = BlockInfo(
        "broken-block",
        "broken-dist",
        "0.3.0",
        "broken_block:Block",
        error="error importing block 'broken-block' from distribution broken-dist 0.3.0 "
        "(broken_block:Block): ZeroDivisionError: division by zero",
    )
    with pytest.raises(ManifestError) as error:
        plan(
            manifest(tmp_path, "  - use: broken-block\n  - use: mini-pay\n"),
            installed={**INSTALLED, "broken-block": broken},
        )
    assert "broken-block" in str(error.value) and "broken-dist" in str(error.value)
    assert "ZeroDivisionError" in str(error.value)


def test_discovery_reports_an_import_failure_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    class FakeDist:
        name = "explosive-blocks"
        version = "9.9"

    class FakeEntryPoint:
        name = "explosive"
        value = "explosive:Block"
        dist = FakeDist()

        def load(self) -> Any:
            raise ImportError("No module named 'explosive'")

    monkeypatch.setattr(metadata, "entry_points", lambda group: [FakeEntryPoint()])
    found = discover({})
    assert found["explosive"].block_class is None
    assert "explosive-blocks" in (found["explosive"].error or "")
    assert "No module named 'explosive'" in (found["explosive"].error or "")


def test_the_allowlist_switch_loads_only_named_blocks() -> None:
    found = discover({"RETAILBLOCKS_BLOCKS": "sql-inventory,loyalty"})
    assert set(found) == {"sql-inventory", "loyalty"}


def test_bad_block_configuration_is_reported_at_its_place(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as error:
        plan(
            manifest(tmp_path, "  - use: mini-inventory\n  - use: configured-pay\n    config: {limit: lots}\n"),
            installed=INSTALLED,
        )
    assert "blocks[1].config.limit" in str(error.value) and ":7:" in str(error.value)


def test_an_unknown_block_gets_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="did you mean 'mini-pay'"):
        plan(manifest(tmp_path, "  - use: mini-inventory\n  - use: mini-pya\n"), installed=INSTALLED)


def test_an_unsatisfied_version_names_the_installed_version(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as error:
        plan(
            manifest(tmp_path, "  - use: mini-inventory\n  - use: mini-pay\n    version: '>=2'\n"), installed=INSTALLED
        )
    assert "1.2.0" in str(error.value) and "blocks[1].version" in str(error.value)


def test_every_capability_declares_hooks_that_exist() -> None:
    names = set(all_hook_names())
    for capability, hooks in REQUIRED_HOOKS.items():
        assert hooks <= names, capability
        assert all(hook.startswith(f"{capability.value}_") for hook in hooks)


def test_every_hook_is_documented_with_a_typed_signature() -> None:
    import inspect

    for module in SPEC_MODULES.values():
        for name, function in vars(module).items():
            if not hasattr(function, "retailblocks_spec"):
                continue
            assert function.__doc__ and len(function.__doc__.split()) >= 8, f"{name} needs a real docstring"
            signature = inspect.signature(function)
            assert signature.return_annotation is not inspect.Signature.empty, name
            for parameter in signature.parameters.values():
                assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name})"
                assert parameter.default is inspect.Parameter.empty, f"{name}({parameter.name}) has a default"


def test_the_trace_switch_prints_every_hook_call_with_its_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retailblocks.stack import assemble
    from tests.helpers import cart, receive, write_manifest

    stack = assemble(
        write_manifest(tmp_path, f"sqlite:///{tmp_path / 'trace.db'}"), environ={"RETAILBLOCKS_TRACE": "1"}
    )
    receive(stack, {"MUG": 2})
    stack.checkout(cart(("MUG", 1), channel="market"), key="traced")
    stack.close()
    traced = capsys.readouterr().err
    assert "inventory.inventory_reserve" in traced and "card.payment_capture" in traced
    assert "stack_startup" in traced
