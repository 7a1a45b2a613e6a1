"""Operator commands: ``blocks loyalty exchange``, ``merges`` and ``unmerge``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from retailblocks.cli.support import (
    console,
    fail,
    json_option,
    manifest_option,
    money_data,
    open_stack,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from retailblocks import Block
    from retailblocks.context import FlowContext
    from retailblocks_loyalty.block import Loyalty


@contextmanager
def _loyalty(manifest: Path, block_id: str | None) -> Iterator[tuple[Loyalty, FlowContext, str]]:
    """The stack's loyalty block and an operator context that commits when the command ends."""
    from retailblocks_loyalty.block import Loyalty

    with open_stack(manifest) as stack:
        chosen: Block | None
        if block_id:
            chosen = stack.block(block_id)
        else:
            chosen = next((b for b in stack.blocks.values() if isinstance(b, Loyalty)), None)
            if chosen is None:
                fail("no loyalty block in this stack")
        if not isinstance(chosen, Loyalty):
            fail(f"block {chosen.id!r} is not a retailblocks-loyalty block; pass --block to choose one")
        with stack.context(channel=None, flow="operator") as ctx:
            ctx.current_block = chosen.id  # events name the block, as when the core calls its hooks
            yield chosen, ctx, stack.currency


def _merge_data(row: dict[str, Any], currency: str) -> dict[str, Any]:
    """A merge row as plain data: timestamps as ISO text, the spend moved as money in its one JSON shape."""
    from retailblocks.model import Money

    data = {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in row.items()}
    if isinstance(data.get("spend_moved"), int):
        data["spend_moved"] = money_data(Money(data["spend_moved"], currency))
    return data


_BLOCK = click.option("--block", "block_id", help="The loyalty block's id, when the stack has several.")


@click.group("loyalty")
def loyalty_group() -> None:
    """Members' points held by the loyalty block: exchange with partners, undo a member merge."""


@loyalty_group.command("exchange")
@manifest_option()
@click.argument("member_id", metavar="MEMBER")
@click.argument("partner")
@click.option("--in", "points_in", type=click.IntRange(min=1), help="Partner points MEMBER brings in.")
@click.option("--out", "points_out", type=click.IntRange(min=1), help="Our points MEMBER sends to PARTNER.")
@click.option("--key", required=True, help="Idempotency key: the same key never exchanges twice.")
@_BLOCK
@json_option()
def exchange(
    manifest: Path,
    member_id: str,
    partner: str,
    points_in: int | None,
    points_out: int | None,
    key: str,
    block_id: str | None,
    as_json: bool,
) -> None:
    """Exchange points between MEMBER and PARTNER's programme at the configured rate (--in or --out)."""
    if (points_in is None) == (points_out is None):
        fail("give --in (partner points brought in) or --out (our points sent out), one of them")
    with _loyalty(manifest, block_id) as (block, ctx, _currency):
        if points_in is not None:
            movement = block.exchange_in(ctx, member_id, partner, points_in, key)
        else:
            assert points_out is not None
            movement = block.exchange_out(ctx, member_id, partner, points_out, key)
    data = {
        "id": movement.id,
        "member_id": movement.member_id,
        "partner": partner,
        "points": movement.points,
        "kind": movement.kind.value,
        "balance": movement.balance,
    }
    if as_json:
        print_json(data)
        return
    console.print(
        f"{movement.points:+d} points for {member_id} in exchange with {partner}; balance now {movement.balance}"
    )


@loyalty_group.command("merges")
@manifest_option()
@click.argument("member_id", metavar="MEMBER")
@_BLOCK
@json_option()
def merges(manifest: Path, member_id: str, block_id: str | None, as_json: bool) -> None:
    """The merges MEMBER took part in, as survivor or absorbed, oldest first (their ids undo them)."""
    with _loyalty(manifest, block_id) as (block, ctx, currency):
        rows = [_merge_data(row, currency) for row in block.merges(ctx, member_id)]
    if as_json:
        print_json(rows)
        return
    print_table(
        f"Merges of {member_id}",
        ["merge", "at", "survivor", "absorbed", "reverted"],
        [[r.get("id"), r.get("at"), r.get("survivor"), r.get("absorbed"), r.get("reverted_at") or ""] for r in rows],
    )


@loyalty_group.command("unmerge")
@manifest_option()
@click.argument("merge_id", metavar="MERGE")
@click.option("--reason", default="", help="Why, for the audit trail.")
@_BLOCK
@json_option()
def unmerge(manifest: Path, merge_id: str, reason: str, block_id: str | None, as_json: bool) -> None:
    """Undo merge MERGE: the absorbed member gets its identities and points back. Asking again changes nothing."""
    with _loyalty(manifest, block_id) as (block, ctx, currency):
        row = _merge_data(block.unmerge(ctx, merge_id, reason), currency)
    if as_json:
        print_json(row)
        return
    console.print(f"merge {merge_id} undone: {row.get('absorbed')} is a member of its own again")
