"""Operator commands: ``blocks stored-value issue-gift-card``, ``top-up`` and ``balance``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from retailblocks.cli.support import console, fail, json_option, manifest_option, money_data, open_stack, print_json

if TYPE_CHECKING:
    from retailblocks import Block, Stack
    from retailblocks.context import FlowContext
    from retailblocks.model import Money
    from retailblocks_stored_value.block import StoredValue


@contextmanager
def _stored_value(manifest: Path, block_id: str | None) -> Iterator[tuple[Stack, StoredValue, FlowContext]]:
    """The stack's stored-value block and an operator context that commits when the command ends."""
    from retailblocks_stored_value.block import StoredValue

    with open_stack(manifest) as stack:
        chosen: Block | None
        if block_id:
            chosen = stack.block(block_id)
        else:
            chosen = next((b for b in stack.blocks.values() if isinstance(b, StoredValue)), None)
            if chosen is None:
                fail("no stored-value block in this stack")
        if not isinstance(chosen, StoredValue):
            fail(f"block {chosen.id!r} is not a retailblocks-stored-value block; pass --block to choose one")
        block = chosen
        with stack.context(channel=None, flow="operator") as ctx:
            ctx.current_block = block.id  # events name the block, as when the core calls its hooks
            yield stack, block, ctx


def _amount(stack: Stack, text: str) -> Money:
    from retailblocks.model import Money

    return Money.parse(f"{text} {stack.currency}")


_BLOCK = click.option("--block", "block_id", help="The stored-value block's id, when the stack has several.")


@click.group("stored-value")
def stored_value_group() -> None:
    """Gift cards and wallets held by the stored-value block: issue, top up, see what they hold."""


@stored_value_group.command("issue-gift-card")
@manifest_option()
@click.argument("amount")
@click.option("--key", required=True, help="Idempotency key: the same key never issues two cards.")
@_BLOCK
@json_option()
def issue_gift_card(manifest: Path, amount: str, key: str, block_id: str | None, as_json: bool) -> None:
    """Issue a gift card loaded with AMOUNT (in the merchant's currency, e.g. 50.00); prints its number."""
    with _stored_value(manifest, block_id) as (stack, block, ctx):
        money = _amount(stack, amount)
        code = block.payment_issue(ctx, "gift_card", money, None, key)
        balance = block.balance(ctx, code)
    if as_json:
        print_json({"gift_card": code, "issued": money_data(money), "balance": money_data(balance)})
        return
    console.print(f"gift card [bold]{code}[/] issued with {money}; it holds {balance}")


@stored_value_group.command("top-up")
@manifest_option()
@click.argument("member_id", metavar="MEMBER")
@click.argument("amount")
@click.option("--key", required=True, help="Idempotency key: the same key never tops up twice.")
@_BLOCK
@json_option()
def top_up(manifest: Path, member_id: str, amount: str, key: str, block_id: str | None, as_json: bool) -> None:
    """Add AMOUNT (in the merchant's currency) to MEMBER's wallet, opening it if need be."""
    with _stored_value(manifest, block_id) as (stack, block, ctx):
        money = _amount(stack, amount)
        wallet = block.payment_issue(ctx, "wallet", money, member_id, key)
        balance = block.balance(ctx, wallet)
    if as_json:
        print_json(
            {"wallet": wallet, "member_id": member_id, "added": money_data(money), "balance": money_data(balance)}
        )
        return
    console.print(f"wallet [bold]{wallet}[/] of {member_id} topped up with {money}; it holds {balance}")


@stored_value_group.command("balance")
@manifest_option()
@click.argument("account", metavar="CARD_OR_MEMBER")
@_BLOCK
@json_option()
def balance_command(manifest: Path, account: str, block_id: str | None, as_json: bool) -> None:
    """What a gift card (by number), a wallet (by id) or a member's wallet holds now."""
    with _stored_value(manifest, block_id) as (_stack, block, ctx):
        balance = block.balance(ctx, account)
    if as_json:
        print_json({"account": account, "balance": money_data(balance)})
        return
    console.print(f"{account} holds {balance}")
