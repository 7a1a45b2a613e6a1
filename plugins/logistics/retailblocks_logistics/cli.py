"""Operator commands: ``blocks shipments list`` and ``blocks shipments track``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from retailblocks.cli.support import fail, json_option, manifest_option, money_data, open_stack, print_json, print_table

if TYPE_CHECKING:
    from retailblocks_logistics.block import Logistics, ShipmentRecord


def _logistics(stack: Any, block_id: str | None) -> Logistics:
    from retailblocks_logistics.block import Logistics  # loaded by a command that runs, not by `--help`

    block = stack.block(block_id) if block_id else stack.block_providing("logistics")
    if not isinstance(block, Logistics):
        fail(f"block {block.id!r} is not a retailblocks-logistics block; pass --block to choose one")
    return block


def _as_dict(record: ShipmentRecord) -> dict[str, Any]:
    shipment = record.shipment
    return {
        "id": shipment.id,
        "order_id": record.order_id,
        "option": shipment.option_id,
        "carrier": shipment.carrier,
        "status": shipment.status.value,
        "tracking_number": shipment.tracking_number,
        "amount": money_data(record.amount),
        "extra_charge": money_data(record.extra_charge),
        "parcels": [
            {"location": p.location, "lines": [{"sku": s, "quantity": q} for s, q in p.lines]} for p in shipment.parcels
        ],
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "ready_at": record.ready_at.isoformat() if record.ready_at else None,
    }


@click.group("shipments")
def shipments_group() -> None:
    """Shipments booked by the logistics block: list them, record tracking updates."""


@shipments_group.command("list")
@manifest_option()
@click.option("--order", "order_id", help="Only the shipments of this order.")
@click.option("--status", help="Only shipments in this status (pending, shipped, …).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--block", "block_id", help="The logistics block's id, when the stack has several.")
@json_option()
def list_shipments(
    manifest: Path,
    order_id: str | None,
    status: str | None,
    limit: int,
    block_id: str | None,
    as_json: bool,
) -> None:
    """List shipments, newest first."""
    with open_stack(manifest) as stack:
        block = _logistics(stack, block_id)
        with stack.context(channel=None, flow="operator", read_only=True) as ctx:
            records = block.shipments(ctx, order_id=order_id, status=status, limit=limit)
    if as_json:
        print_json([_as_dict(record) for record in records])
        return
    print_table(
        "Shipments",
        ["id", "order", "option", "carrier", "status", "tracking", "parcels", "created"],
        [
            [
                r.shipment.id,
                r.order_id,
                r.shipment.option_id,
                r.shipment.carrier,
                r.shipment.status.value,
                r.shipment.tracking_number,
                ", ".join(p.location for p in r.shipment.parcels),
                r.created_at.isoformat(timespec="seconds"),
            ]
            for r in records
        ],
    )


@shipments_group.command("track")
@manifest_option()
@click.argument("shipment_id")
@click.argument("status")
@click.option("--note", default="", help="What happened, for the shipment's history.")
@click.option("--block", "block_id", help="The logistics block's id, when the stack has several.")
@json_option()
def track_shipment(
    manifest: Path, shipment_id: str, status: str, note: str, block_id: str | None, as_json: bool
) -> None:
    """Record that SHIPMENT_ID moved to STATUS (shipped, in_transit, delivered, collected, …)."""
    with open_stack(manifest) as stack:
        block = _logistics(stack, block_id)
        with stack.context(channel=None, flow="operator") as ctx:
            ctx.current_block = block.id  # events name the block, as when the core calls the hook
            shipment = block.track(ctx, shipment_id, status, note)
    if as_json:
        print_json(
            {
                "id": shipment.id,
                "status": shipment.status.value,
                "carrier": shipment.carrier,
                "tracking_number": shipment.tracking_number,
            }
        )
        return
    click.echo(f"shipment {shipment.id} is now {shipment.status.value}")
