"""Two marketing blocks in one stack: the stacking policy, not the manifest's order of blocks, decides how
their adjustments combine; exclusive blocks and best_of groups never stack; placing an order gives each
block its lines and member; a block written for the old redeem hook still works, with a warning."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from retailblocks import Block, Capability, assemble, hookimpl
from retailblocks.assembly.discovery import BlockInfo, discover
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.context import FlowContext
from retailblocks.errors import MemberLimitReached, PromotionRejected
from retailblocks.manifest import ManifestError
from retailblocks.model import (
    AdjustmentTarget,
    Member,
    Money,
    Order,
    PriceAdjustment,
    PricedLine,
)
from retailblocks.stack import Stack
from tests.helpers import SHOP_MANIFEST, cart, member, receive, write_manifest


@attrs.frozen
class FlatOffConfig:
    #: Minor units taken off the cart's first line.
    amount: int = 1000


class _FlatOff(Block):
    """A second marketing block, as a third party would write it: a fixed amount off the first line."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.MARKETING})
    core_api: ClassVar[str] = "1.3"
    Config: ClassVar[type[Any]] = FlatOffConfig

    def __init__(self, config: Any, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        self.placed: list[tuple[Order, Member | None, tuple[PriceAdjustment, ...]]] = []
        self.released: list[Order] = []

    @hookimpl
    def marketing_adjustments(
        self, lines: Sequence[PricedLine], existing: Sequence[PriceAdjustment]
    ) -> list[PriceAdjustment]:
        if not lines:
            return []
        first = lines[0]
        taken = sum(share.amount for a in existing for index, share in a.line_amounts if index == first.index)
        amount = min(self.config.amount, first.subtotal.amount - taken)
        if amount <= 0:
            return []
        money = Money(amount, first.unit_price.currency)
        return [
            PriceAdjustment(
                block=self.id,
                promotion_id="flat",
                target=AdjustmentTarget.ITEM,
                amount=money,
                reason=f"{money} off {first.sku}",
                funder="test-shop",
                line_amounts=((first.index, money),),
            )
        ]

    @hookimpl
    def marketing_release(self, order: Order) -> None:
        self.released.append(order)


class FlatOff(_FlatOff):
    name: ClassVar[str] = "flat-off"

    @hookimpl
    def marketing_place(
        self, ctx: FlowContext, order: Order, member: Member | None, adjustments: Sequence[PriceAdjustment]
    ) -> None:
        self.placed.append((order, member, tuple(adjustments)))


class ExclusiveFlatOff(FlatOff):
    """The same block declaring itself not combinable."""

    name: ClassVar[str] = "exclusive-flat-off"
    exclusive: ClassVar[bool] = True


class OldFormFlatOff(_FlatOff):
    """A block written for core API 1.2: it redeems with marketing_redeem, not marketing_place."""

    name: ClassVar[str] = "old-flat-off"
    core_api: ClassVar[str] = "1.2"

    def __init__(self, config: Any, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        self.redeemed: list[tuple[str, str | None, tuple[PriceAdjustment, ...]]] = []

    @hookimpl
    def marketing_redeem(self, order_id: str, member_id: str | None, adjustments: Sequence[PriceAdjustment]) -> None:
        self.redeemed.append((order_id, member_id, tuple(adjustments)))


def _info(cls: type[Block]) -> BlockInfo:
    return BlockInfo(cls.name, "acme-flat-off", "0.1.0", f"tests:{cls.__name__}", block_class=cls)


INSTALLED = {**discover({}), **{cls.name: _info(cls) for cls in (FlatOff, ExclusiveFlatOff, OldFormFlatOff)}}

# The shop's promotions, plus 10 % off the whole order (computed after the adjustments kept before it).
PROMOTIONS = """  - use: promotions
    config:
      promotions:
        - {id: tea-10, skus: [TEA], value_type: percentage, value: 10}
        - {id: save5, code: SAVE5, target: order, allocation: across, value_type: fixed, value: "5.00 CNY",
           usage_limit: 1000}
        - {id: order-10, target: order, allocation: across, value_type: percentage, value: 10}
"""
BASE, _, _ = SHOP_MANIFEST.partition("  - use: promotions\n")
ROUTING = "routing:\n  payment: {card: card, gift_card: stored-value, wallet: stored-value, points: loyalty}\n"


def manifest_text(*, flat: str = "flat-off", amount: int = 1000, flat_first: bool = False, marketing: str = "") -> str:
    flat_entry = f"  - use: {flat}\n    config: {{amount: {amount}}}\n"
    blocks = flat_entry + PROMOTIONS if flat_first else PROMOTIONS + flat_entry
    policy = "".join(f"    {line}\n" for line in marketing.strip().splitlines()) if marketing else ""
    return BASE + blocks + ROUTING + (f"  marketing:\n{policy}" if policy else "")


def open_stack(tmp_path: Path, database_url: str, text: str) -> Stack:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_manifest(tmp_path, database_url, text)
    return assemble(path, clock=clock, ids=RandomIds(0), lease_clock=clock, installed=INSTALLED)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shop.db'}"


def discounts(stack: Stack, *lines: tuple[str, int], coupons: tuple[str, ...] = ()) -> list[tuple[str, str, int]]:
    priced = stack.quote(cart(*lines, coupons=coupons))
    return [(a.block, a.promotion_id, a.amount.amount) for a in priced.adjustments]


ORDER_FLAT_FIRST = "order: [flat-off, promotions]"
ORDER_PROMOTIONS_FIRST = "order: [promotions, flat-off]"


@pytest.mark.parametrize("flat_first", [False, True], ids=["flat-off-listed-last", "flat-off-listed-first"])
def test_the_policy_order_decides_not_the_manifest_order(tmp_path: Path, sqlite_url: str, flat_first: bool) -> None:
    # Two beans: 100.00. flat-off first: 10.00 off, then 10 % of the 90.00 left. Promotions first: 10 % of
    # 100.00, then 10.00 off. Listing the blocks the other way round in `blocks:` changes neither.
    with open_stack(tmp_path, sqlite_url, manifest_text(flat_first=flat_first, marketing=ORDER_FLAT_FIRST)) as stack:
        assert discounts(stack, ("BEANS", 2)) == [("flat-off", "flat", 1000), ("promotions", "order-10", 900)]
    with open_stack(
        tmp_path / "other",
        sqlite_url.replace("shop.db", "other.db"),
        manifest_text(flat_first=flat_first, marketing=ORDER_PROMOTIONS_FIRST),
    ) as stack:
        assert discounts(stack, ("BEANS", 2)) == [("promotions", "order-10", 1000), ("flat-off", "flat", 1000)]


def test_without_a_policy_the_stated_default_is_the_order_of_blocks(tmp_path: Path, sqlite_url: str) -> None:
    with open_stack(tmp_path, sqlite_url, manifest_text(flat_first=True)) as stack:
        policy = stack.hooks.routes.marketing
        assert policy.order == ("flat-off", "promotions")
        assert "default" in policy.order_from
        assert discounts(stack, ("BEANS", 2)) == [("flat-off", "flat", 1000), ("promotions", "order-10", 900)]


@pytest.mark.parametrize(
    ("amount", "kept"),
    [
        (1500, [("flat-off", "flat", 1500)]),  # 15.00 alone beats 10 % of 100.00
        (500, [("promotions", "order-10", 1000)]),  # 10 % of 100.00 beats 5.00 alone
    ],
)
def test_an_exclusive_block_s_adjustments_exclude_the_others(
    tmp_path: Path, sqlite_url: str, amount: int, kept: list[tuple[str, str, int]]
) -> None:
    text = manifest_text(amount=amount, marketing=f"{ORDER_FLAT_FIRST}\nexclusive: [flat-off]")
    with open_stack(tmp_path, sqlite_url, text) as stack:
        assert stack.hooks.routes.marketing.exclusive == {"flat-off": "manifest"}
        assert discounts(stack, ("BEANS", 2)) == kept


def test_a_block_declares_itself_exclusive(tmp_path: Path, sqlite_url: str) -> None:
    with open_stack(tmp_path, sqlite_url, manifest_text(flat="exclusive-flat-off", amount=1500)) as stack:
        assert stack.hooks.routes.marketing.exclusive == {"exclusive-flat-off": "block"}
        assert discounts(stack, ("BEANS", 2)) == [("exclusive-flat-off", "flat", 1500)]


def test_a_coupon_set_aside_by_an_exclusive_block_is_refused_as_not_combinable(tmp_path: Path, sqlite_url: str) -> None:
    text = manifest_text(amount=5000, marketing="exclusive: [flat-off]")
    refusal = r"'SAVE5' does not combine with the promotions applied \(block 'flat-off' is exclusive"
    with open_stack(tmp_path, sqlite_url, text) as stack, pytest.raises(PromotionRejected, match=refusal):
        stack.quote(cart(("BEANS", 2), coupons=("SAVE5",)))


def test_only_the_best_of_a_group_applies(tmp_path: Path, sqlite_url: str) -> None:
    for amount, kept in ((1500, [("flat-off", "flat", 1500)]), (500, [("promotions", "order-10", 1000)])):
        text = manifest_text(amount=amount, marketing="best_of: [[promotions, flat-off]]")
        directory = tmp_path / str(amount)
        with open_stack(directory, f"sqlite:///{directory / 'shop.db'}", text) as stack:
            assert discounts(stack, ("BEANS", 2)) == kept


def test_assembly_reports_the_policy_and_locks_it(tmp_path: Path, sqlite_url: str) -> None:
    from retailblocks.assembly.describe import describe_plan
    from retailblocks.stack import plan

    text = manifest_text(marketing=f"{ORDER_PROMOTIONS_FIRST}\nexclusive: [flat-off]")
    path = write_manifest(tmp_path, sqlite_url, text)
    described = describe_plan(plan(path, installed=INSTALLED))
    assert described["routing"]["marketing"] == {
        "order": ["promotions", "flat-off"],
        "order_from": "routing.marketing.order",
        "exclusive": {"flat-off": "manifest"},
        "best_of": [],
    }


@pytest.mark.parametrize(
    ("marketing", "where", "problem"),
    [
        ("order: [promotions]", "routing.marketing.order", "leaves out the marketing block(s) 'flat-off'"),
        ("order: [promotions, flat-off, card]", "routing.marketing.order[2]", "'card' is not a marketing block"),
        ("exclusive: [loyalty]", "routing.marketing.exclusive[0]", "'loyalty' is not a marketing block"),
    ],
)
def test_a_policy_that_does_not_fit_the_blocks_is_refused_where_it_is_written(
    tmp_path: Path, sqlite_url: str, marketing: str, where: str, problem: str
) -> None:
    from retailblocks.stack import plan

    path = write_manifest(tmp_path, sqlite_url, manifest_text(marketing=marketing))
    with pytest.raises(ManifestError) as error:
        plan(path, installed=INSTALLED)
    message = str(error.value)
    assert "blocks.yaml:" in message and where in message and problem in message


def test_placing_gives_each_block_the_lines_and_the_member(tmp_path: Path, database_url: str) -> None:
    with open_stack(tmp_path, database_url, manifest_text(marketing=ORDER_FLAT_FIRST)) as stack:
        receive(stack, {"BEANS": 10, "TEA": 10})
        order = stack.checkout(cart(("BEANS", 2), ("TEA", 1), identities=member("13800000001")), key="k1")
        flat = stack.blocks["flat-off"]
        assert isinstance(flat, FlatOff)
        [(placed, who, own)] = flat.placed
        assert placed.id == order.id
        assert [(line.sku, line.quantity, line.unit_price.amount) for line in placed.lines] == [
            ("BEANS", 2, 5000),
            ("TEA", 1, 2000),
        ]
        assert who is not None and who.id == order.member_id
        assert [a.block for a in own] == ["flat-off"]  # its own adjustments; the order carries them all
        assert {a.block for a in placed.adjustments} == {"flat-off", "promotions"}
        stack.cancel(order.id, key="c1")
        assert [released.id for released in flat.released] == [order.id]
        assert [line.sku for line in flat.released[0].lines] == ["BEANS", "TEA"]


def test_a_block_of_the_old_form_still_redeems_and_is_warned(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.warns(DeprecationWarning, match="marketing_redeem is deprecated: implement marketing_place"):
        stack = open_stack(tmp_path, sqlite_url, manifest_text(flat="old-flat-off"))
    with stack, warnings.catch_warnings():
        warnings.simplefilter("error")  # only registration warns, not every order
        receive(stack, {"BEANS": 10})
        order = stack.checkout(cart(("BEANS", 1), identities=member("13800000002")), key="k1")
        old = stack.blocks["old-flat-off"]
        assert isinstance(old, OldFormFlatOff)
        assert [(order_id, member_id, [a.amount.amount for a in own]) for order_id, member_id, own in old.redeemed] == [
            (order.id, order.member_id, [1000])
        ]


def test_a_changed_policy_is_a_change_of_the_locked_stack(tmp_path: Path, sqlite_url: str) -> None:
    from retailblocks.assembly.describe import describe_plan
    from retailblocks.assembly.lockfile import lock_changes
    from retailblocks.stack import plan

    locked = describe_plan(plan(write_manifest(tmp_path, sqlite_url, manifest_text()), installed=INSTALLED))
    same = describe_plan(plan(write_manifest(tmp_path, sqlite_url, manifest_text()), installed=INSTALLED))
    assert lock_changes(locked, same) == []
    text = manifest_text(marketing=ORDER_FLAT_FIRST)
    changed = describe_plan(plan(write_manifest(tmp_path, sqlite_url, text), installed=INSTALLED))
    assert lock_changes(locked, changed) == ["the marketing stacking policy changed"]


ONCE_PER_MEMBER = PROMOTIONS + (
    '        - {id: welcome, code: WELCOME, target: order, value_type: fixed, value: "3.00 CNY", per_member_limit: 1}\n'
)


def test_a_member_s_own_limit_is_refused_as_such_not_as_a_coupon_that_does_not_apply(
    tmp_path: Path, database_url: str
) -> None:
    from retailblocks.flows.api import rejection_from
    from retailblocks.http.problems import problem_for

    text = BASE + ONCE_PER_MEMBER + ROUTING
    with open_stack(tmp_path, database_url, text) as stack:
        receive(stack, {"BEANS": 10})
        alice = member("13800000003")
        stack.checkout(cart(("BEANS", 1), identities=alice, coupons=("WELCOME",)), key="k1")
        with pytest.raises(MemberLimitReached, match="already used promotion 'welcome' 1 time") as refused:
            stack.checkout(cart(("BEANS", 1), identities=alice, coupons=("WELCOME",)), key="k2")
        # Another member, and the same code, are fine.
        stack.checkout(cart(("BEANS", 1), identities=member("13800000004"), coupons=("WELCOME",)), key="k3")
    error = refused.value
    assert error.cause == "member_limit_reached" and error.exit_status == 3
    assert isinstance(rejection_from(f"{error.cause}: {error}"), MemberLimitReached)  # a replay says the same
    answer = problem_for(error)
    assert answer.status_code == 409
    assert b'"type":"urn:retailblocks:problem:member-limit-reached"' in answer.body
    assert b'"cause":"member_limit_reached"' in answer.body


def test_assembly_names_a_block_implementing_a_deprecated_hook(tmp_path: Path, sqlite_url: str) -> None:
    from retailblocks.assembly.routing import deprecated_implementations
    from retailblocks.stack import plan

    with pytest.warns(DeprecationWarning, match="marketing_redeem"):
        old = plan(write_manifest(tmp_path, sqlite_url, manifest_text(flat="old-flat-off")), installed=INSTALLED)
    assert deprecated_implementations(old.plugin_manager, old.blocks) == [
        "block 'old-flat-off' (distribution acme-flat-off): marketing_redeem is deprecated: implement "
        "marketing_place(ctx, order, member, adjustments) instead (core API 1.3), which gets the order's lines "
        "and the member"
    ]
    current = plan(write_manifest(tmp_path, sqlite_url, manifest_text()), installed=INSTALLED)
    assert deprecated_implementations(current.plugin_manager, current.blocks) == []
