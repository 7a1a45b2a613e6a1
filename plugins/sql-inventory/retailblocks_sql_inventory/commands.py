"""``blocks stock …``: the operator's commands to see stock and record what happened to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from retailblocks.cli.support import json_option, manifest_option, print_json
from retailblocks.errors import InvalidValue
from retailblocks.model.limits import MAX_ID_LENGTH, MAX_QUANTITY, check_text

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks_sql_inventory.block import SqlInventory

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _inventory(manifest: Path, location: str | None = None) -> Iterator[tuple[SqlInventory, FlowContext]]:
    """The stack's inventory block and an operator context that commits when the command ends."""
    from retailblocks.cli.support import fail, open_stack
    from retailblocks_sql_inventory.block import SqlInventory

    with open_stack(manifest) as stack:
        block = stack.block_providing("inventory")
        if not isinstance(block, SqlInventory):
            fail(f"the stack's inventory block {block.id!r} is not sql-inventory")
        if location is not None and location not in block.config.location_ids:
            raise click.BadParameter(
                f"unknown location {location!r}; known locations: {', '.join(sorted(block.config.location_ids))}",
                param_hint="LOCATION",
            )
        with stack.context(channel=None, flow="operator") as ctx:
            ctx.current_block = block.id
            yield block, ctx


def _sku(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    values = value if isinstance(value, tuple) else (value,)
    for sku in values:
        try:
            check_text(sku, "a SKU", max_length=MAX_ID_LENGTH, allow_empty=False)
        except InvalidValue as error:
            raise click.BadParameter(str(error)) from None
    return value


def _non_zero(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
    if value == 0:
        raise click.BadParameter("must be a non-zero number of units (e.g. -2 for two damaged)")
    return value


@click.group("stock")
def stock_group() -> None:
    """See and move stock held by the sql-inventory block."""


@stock_group.command("levels")
@manifest_option()
@click.option("--sku", "skus", multiple=True, callback=_sku, help="Only this SKU (repeatable).")
@json_option()
def levels_command(manifest: Path, skus: Sequence[str], as_json: bool) -> None:
    """Stock per SKU and location: on hand, reserved, allocated, available."""
    from retailblocks.cli.support import print_table

    with _inventory(manifest) as (block, ctx):
        rows = block.levels(ctx, skus)
    if as_json:
        print_json(
            [
                {
                    "sku": r.sku,
                    "location": r.location,
                    "on_hand": r.on_hand,
                    "reserved": r.reserved,
                    "allocated": r.allocated,
                    "available": r.available,
                }
                for r in rows
            ]
        )
        return
    print_table(
        "Stock levels",
        ["SKU", "Location", "On hand", "Reserved", "Allocated", "Available"],
        [[r.sku, r.location, r.on_hand, r.reserved, r.allocated, r.available] for r in rows],
    )


@stock_group.command("receive")
@manifest_option()
@click.argument("sku", callback=_sku)
@click.argument("location")
@click.argument("quantity", type=click.IntRange(min=1, max=MAX_QUANTITY))
@click.option("--reason", default="received", show_default=True, help="Why (a delivery note, a PO).")
@json_option()
def receive_command(manifest: Path, sku: str, location: str, quantity: int, reason: str, as_json: bool) -> None:
    """Goods arrived: add QUANTITY units of SKU on hand at LOCATION."""
    with _inventory(manifest, location) as (block, ctx):
        on_hand = block.receive(ctx, sku, location, quantity, reason=reason)
    if as_json:
        print_json({"sku": sku, "location": location, "delta": quantity, "on_hand": on_hand})
        return
    click.echo(f"received {quantity} x {sku} at {location}; on hand now {on_hand}")


# Let "-2" reach DELTA as a number instead of being read as an unknown option.
@stock_group.command("adjust", context_settings={"ignore_unknown_options": True})
@manifest_option()
@click.argument("sku", callback=_sku)
@click.argument("location")
@click.argument("delta", type=click.IntRange(min=-MAX_QUANTITY, max=MAX_QUANTITY), callback=_non_zero)
@click.option("--reason", required=True, help="Why the stock changed ('damaged', 'found').")
@json_option()
def adjust_command(manifest: Path, sku: str, location: str, delta: int, reason: str, as_json: bool) -> None:
    """Correct on hand of SKU at LOCATION by DELTA units (negative for damage or loss)."""
    if not reason.strip():
        raise click.BadParameter("must say why the stock changed", param_hint="--reason")
    with _inventory(manifest, location) as (block, ctx):
        on_hand = block.adjust(ctx, sku, location, delta, reason=reason)
    if as_json:
        print_json({"sku": sku, "location": location, "delta": delta, "on_hand": on_hand})
        return
    click.echo(f"adjusted {sku} at {location} by {delta:+d}; on hand now {on_hand}")


@stock_group.command("count")
@manifest_option()
@click.argument("sku", callback=_sku)
@click.argument("location")
@click.argument("counted", type=click.IntRange(min=0, max=MAX_QUANTITY))
@json_option()
def count_command(manifest: Path, sku: str, location: str, counted: int, as_json: bool) -> None:
    """Record a count: on hand of SKU at LOCATION becomes COUNTED; the difference is a movement."""
    with _inventory(manifest, location) as (block, ctx):
        before = block.levels(ctx, [sku])
        on_hand = block.count(ctx, sku, location, counted)
    previous = next((level.on_hand for level in before if level.location == location), 0)
    if as_json:
        print_json({"sku": sku, "location": location, "delta": on_hand - previous, "on_hand": on_hand})
        return
    click.echo(f"counted {counted} x {sku} at {location} (was {previous}, {on_hand - previous:+d})")


@stock_group.command("movements")
@manifest_option()
@click.option("--sku", "skus", multiple=True, callback=_sku, help="Only this SKU (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N.")
@json_option()
def movements_command(manifest: Path, skus: Sequence[str], limit: int | None, as_json: bool) -> None:
    """The movement ledger, oldest first: every change of on hand and why."""
    from retailblocks.cli.support import print_table

    with _inventory(manifest) as (block, ctx):
        rows = block.movements(ctx, skus, limit=limit)
    if as_json:
        print_json(
            [
                {
                    "id": m.id,
                    "sku": m.sku,
                    "location": m.location,
                    "delta": m.delta,
                    "kind": m.kind,
                    "reason": m.reason,
                    "order_id": m.order_id,
                    "key": m.key,
                    "at": m.at.isoformat(),
                }
                for m in rows
            ]
        )
        return
    print_table(
        "Stock movements",
        ["#", "At", "SKU", "Location", "Delta", "Kind", "Reason", "Order"],
        [
            [
                m.id,
                m.at.isoformat(timespec="seconds"),
                m.sku,
                m.location,
                f"{m.delta:+d}",
                m.kind,
                m.reason,
                m.order_id or "",
            ]
            for m in rows
        ],
    )
