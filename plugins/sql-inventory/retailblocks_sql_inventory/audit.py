"""The inventory's own invariants, checked from its tables for ``blocks simulate`` and operators."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from retailblocks import AuditFinding
from retailblocks_sql_inventory.tables import allocations, levels, movements, reservation_lines, reservations

Pair = tuple[str, str]


def audit(connection: sa.Connection) -> list[AuditFinding]:
    """On hand is the sum of movements; reserved and allocated are what reservations and orders hold."""
    stock = {(row.sku, row.location): row for row in connection.execute(sa.select(levels))}
    ledger: Counter[Pair] = Counter()
    for row in connection.execute(
        sa.select(movements.c.sku, movements.c.location, sa.func.sum(movements.c.delta)).group_by(
            movements.c.sku, movements.c.location
        )
    ):
        ledger[(row[0], row[1])] = int(row[2])
    held: Counter[Pair] = Counter()
    for row in connection.execute(
        sa.select(reservation_lines.c.sku, reservation_lines.c.location, sa.func.sum(reservation_lines.c.quantity))
        .join(reservations, reservations.c.id == reservation_lines.c.reservation_id)
        .where(reservations.c.status == "active")
        .group_by(reservation_lines.c.sku, reservation_lines.c.location)
    ):
        held[(row[0], row[1])] = int(row[2])
    allocated: Counter[Pair] = Counter()
    for row in connection.execute(
        sa.select(allocations.c.sku, allocations.c.location, sa.func.sum(allocations.c.allocated)).group_by(
            allocations.c.sku, allocations.c.location
        )
    ):
        allocated[(row[0], row[1])] = int(row[2])

    pairs = sorted(set(stock) | set(ledger))
    on_hand = {pair: stock[pair].on_hand if pair in stock else 0 for pair in pairs}
    off_ledger = [
        f"{sku}@{where}: on hand {on_hand[(sku, where)]}, movements {ledger[(sku, where)]}"
        for sku, where in pairs
        if on_hand[(sku, where)] != ledger[(sku, where)]
    ]
    off_reserved = [
        f"{sku}@{where}: reserved {row.reserved}, active reservations {held[(sku, where)]}"
        for (sku, where), row in stock.items()
        if row.reserved != held[(sku, where)]
    ]
    off_allocated = [
        f"{sku}@{where}: allocated {row.allocated}, orders hold {allocated[(sku, where)]}"
        for (sku, where), row in stock.items()
        if row.allocated != allocated[(sku, where)]
    ]
    negative = [
        f"{sku}@{where}" for (sku, where), row in stock.items() if min(row.on_hand, row.reserved, row.allocated) < 0
    ]
    return [
        AuditFinding(
            "on hand equals the sum of stock movements",
            not off_ledger,
            "; ".join(off_ledger[:5]) or f"{len(pairs)} positions, {sum(ledger.values())} units",
        ),
        AuditFinding("reserved equals the active reservations", not off_reserved, "; ".join(off_reserved[:5])),
        AuditFinding("allocated equals what orders hold", not off_allocated, "; ".join(off_allocated[:5])),
        AuditFinding("no stock figure is negative", not negative, ", ".join(negative[:5])),
    ]
