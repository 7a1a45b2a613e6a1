"""What each channel may sell, published when it changes and readable in bulk, so that listings kept on
other platforms (a marketplace storefront, a social shop) never offer stock the brand cannot deliver.

Published for the channels whose listings live on another platform — marketplace and social channels;
any channel's figures can be read in bulk (:func:`channel_stock`).

"Sellable" is the inventory block's answer for the channel: units at the channel's locations, after its
safety stock. Publishing follows the outbox: stock events (``stock.*``) name the SKUs they moved (``sku``,
or ``lines[].sku``, as the reference inventory block writes them; an event that names none makes every
SKU be looked at again). For each channel selling such a SKU the sellable units are computed again and,
when they differ from what the channel was last told, a ``listing.stock_changed`` event is recorded with
the channel — which webhooks carry to the channel's connector. One transaction reads the events, writes
the new figures and the events, and moves the publisher's cursor, so a crash publishes nothing twice and
loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from retailblocks.connectors.tables import channel_listings
from retailblocks.events.positions import Position, after, cursor, move_cursor, settled, unread
from retailblocks.hookspecs import inventory
from retailblocks.model import ChannelType
from retailblocks.storage import UnitOfWork
from retailblocks.storage.blocks_api import insert_if_absent
from retailblocks.storage.tables import outbox

if TYPE_CHECKING:
    from retailblocks.assembly.runtime import Runtime

#: The publisher's cursor in ``event_cursors``; not a listener, so the dispatcher never visits it.
CURSOR = "connectors:listings"
CHANGED = "listing.stock_changed"
#: Stock events read per transaction.
BATCH = 500
#: The channels whose listings live elsewhere, and are told when what they may sell changes.
PUBLISHED_TYPES = frozenset({ChannelType.MARKETPLACE, ChannelType.SOCIAL})
_STOCK_EVENT = outbox.c.type.startswith("stock.", autoescape=True)


@attrs.frozen
class ListingUpdate:
    channel: str
    sku: str
    sellable: int
    previous: int | None


def channel_stock(stack: Runtime, channel: str) -> dict[str, int]:
    """Units ``channel`` may sell now of every SKU it sells, in one read (the bulk feed of a listing)."""
    stack.channel(channel)
    skus = [product.sku for product in stack.catalog.values() if product.sold_in(channel)]
    if not skus:
        return {}
    with stack.context(channel, flow="read", read_only=True) as ctx:
        sellable = stack.hooks.call(inventory.inventory_available, ctx, skus)
    return {sku: max(0, int(sellable.get(sku, 0))) for sku in skus}


def publish_listings(stack: Runtime, *, rounds: int = 100) -> list[ListingUpdate]:
    """Publish every change of a channel's sellable stock since the last call; returns what changed."""
    published: list[ListingUpdate] = []
    for _ in range(rounds):
        updates, more = _publish_round(stack)
        published.extend(updates)
        if not more:
            break
    return published


def _publish_round(stack: Runtime) -> tuple[list[ListingUpdate], bool]:
    if not _anything_new(stack):
        return [], False  # asked every second by each server: an idle answer takes no write lock
    with UnitOfWork(stack.engine) as uow:
        connection = uow.connection
        last = cursor(connection, CURSOR, for_update=True)
        rows = connection.execute(unread(connection.dialect.name, last, _STOCK_EVENT).limit(BATCH)).mappings().all()
        if not rows:
            return [], False
        named = [_skus_named(row["payload"]) for row in rows]
        everything = any(skus is None for skus in named)
        moved = set(stack.catalog) if everything else {sku for skus in named for sku in skus or ()}
        updates = _refresh(stack, uow, moved)
        move_cursor(connection, CURSOR, Position.of(rows[-1]))
    return updates, len(rows) == BATCH


def _refresh(stack: Runtime, uow: UnitOfWork, moved: Iterable[str]) -> list[ListingUpdate]:
    connection = uow.connection
    now = stack.clock.now()
    updates: list[ListingUpdate] = []
    for channel in (c.id for c in stack.channels.values() if c.type in PUBLISHED_TYPES):
        skus = sorted(sku for sku in moved if sku in stack.catalog and stack.catalog[sku].sold_in(channel))
        if not skus:
            continue
        ctx = stack.new_context(uow, channel, flow="listings")
        sellable = stack.hooks.call(inventory.inventory_available, ctx, skus)
        told: Mapping[str, int] = dict(
            connection.execute(
                sa.select(channel_listings.c.sku, channel_listings.c.sellable).where(
                    channel_listings.c.channel == channel, channel_listings.c.sku.in_(skus)
                )
            ).all()
        )
        for sku in skus:
            now_sellable = max(0, int(sellable.get(sku, 0)))
            previous = told.get(sku)
            if previous == now_sellable:
                continue
            if previous is None:
                insert_if_absent(
                    connection,
                    channel_listings,
                    {"channel": channel, "sku": sku, "sellable": now_sellable, "updated_at": now},
                )
            else:
                connection.execute(
                    channel_listings.update()
                    .where(channel_listings.c.channel == channel, channel_listings.c.sku == sku)
                    .values(sellable=now_sellable, updated_at=now)
                )
            ctx.record(CHANGED, {"sku": sku, "sellable": now_sellable, "previous": previous})
            updates.append(ListingUpdate(channel, sku, now_sellable, previous))
    return updates


def _skus_named(payload: Any) -> Sequence[str] | None:
    """The SKUs a stock event names; None when it names none (every SKU is then looked at again)."""
    if not isinstance(payload, Mapping):
        return None
    if isinstance(payload.get("sku"), str):
        return [payload["sku"]]
    lines = payload.get("lines")
    if isinstance(lines, list):
        skus = [line["sku"] for line in lines if isinstance(line, Mapping) and isinstance(line.get("sku"), str)]
        if skus:
            return skus
    return None


def _anything_new(stack: Runtime) -> bool:
    with stack.engine.connect() as connection:
        connection.info["read_only"] = True
        last = cursor(connection, CURSOR)
        newer = connection.execute(
            sa.select(outbox.c.id).where(after(last), _STOCK_EVENT, settled(connection.dialect.name)).limit(1)
        ).first()
        connection.rollback()
    return newer is not None
