"""The scripted moments of a simulated day, around the random shoppers.

Random carts exercise most of what a stack does; some features need a particular moment: members who
join before the shops open and top up their wallets, a shopper who abandons a cart (its reservation
expires), parcels travelling to the door and pickups collected, an operator counting a shelf and writing
off a broken mug, and — a year later — points that were never spent expiring.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import TYPE_CHECKING

from retailblocks.errors import BusinessRejection, InvalidInput
from retailblocks.flows.capabilities import maintain, stock_locations
from retailblocks.hookspecs import inventory, logistics, membership, payment
from retailblocks.model import Identity, Money, OrderStatus, ShipmentStatus, StockDemand

if TYPE_CHECKING:
    from retailblocks.simulation.day import DayResult, RetailDay

WELCOME_POINTS = 500


class Moments:
    def __init__(self, day: RetailDay):
        self.day = day
        self.stack = day.stack
        self.hooks = day.stack.hooks
        self.rng = random.Random(f"{day.seed}:moments")

    def opening(self) -> None:
        """Members who joined in a store with their phone: welcome points and a topped-up wallet."""
        if not self.hooks.provides(membership.membership_identify):
            return
        wallets = "wallet" in self.day.methods
        for person in range(self.day.profile.members):
            phone = Identity("phone", f"+86138{person:08d}")
            with self.stack.context(self._store_channel(), flow="simulation") as ctx:
                member = self.hooks.maybe(membership.membership_identify, ctx, [phone], True)
                if member is None:
                    continue
                if self.hooks.provides(membership.membership_adjust):
                    self.hooks.call(
                        membership.membership_adjust,
                        ctx,
                        member.id,
                        WELCOME_POINTS,
                        "welcome bonus",
                        self.day.key(f"welcome-{person}"),
                    )
            if wallets:
                with self.stack.context(flow="simulation") as ctx:
                    self.hooks.call(
                        payment.payment_issue,
                        ctx,
                        "wallet",
                        Money(20000, self.stack.currency),
                        member.id,
                        self.day.key(f"wallet-{person}"),
                    )

    def midday_campaigns(self, result: DayResult) -> dict[str, tuple[str, str | None]]:
        """Run every campaign of the manifest; return who got which coupon, by identity value."""
        import sqlalchemy as sa

        from retailblocks.fusion.campaigns import run_campaign
        from retailblocks.fusion.tables import campaign_coupons

        offers: dict[str, tuple[str, str | None]] = {}
        for campaign in self.stack.manifest.campaigns:
            if self.day.wire is not None:
                reach = self.day.wire.run_campaign(campaign.id, self.day.key(f"campaign-{campaign.id}"))
            else:
                reach = run_campaign(self.stack, campaign.id).reach
            result.notes.append(f"campaign {campaign.id} reached {reach} members at midday")
        with self.stack.context(flow="simulation", read_only=True) as ctx:
            issued = ctx.db.execute(
                sa.select(campaign_coupons.c.member_id, campaign_coupons.c.code, campaign_coupons.c.channel)
            ).all()
            for member_id, code, channel in issued:
                member = self.hooks.maybe(membership.membership_member, ctx, member_id)
                for identity in member.identities if member else ():
                    offers[identity.value] = (code, channel)
        return offers

    def after_hours(self, result: DayResult) -> None:
        self._partner_points(result)
        self._abandoned_cart(result)
        self._parcels_travel(result)
        self._stock_count(result)
        self._a_year_later(result)

    def _partner_points(self, result: DayResult) -> None:
        """Some members bring points from a partner's programme; a few send theirs the other way."""
        if not self.stack.manifest.partners or not self.hooks.provides(membership.membership_exchange):
            return
        moved = 0
        for person in range(0, self.day.profile.members, 7):
            partner = self.stack.manifest.partners[person % len(self.stack.manifest.partners)].id
            phone = Identity("phone", f"+86138{person:08d}")
            points = 400 if person % 2 == 0 else -100
            try:
                with self.stack.context(flow="simulation") as ctx:
                    member = self.hooks.maybe(membership.membership_identify, ctx, [phone], False)
                    if member is None:
                        continue
                    self.hooks.maybe(
                        membership.membership_exchange,
                        ctx,
                        member.id,
                        partner,
                        points,
                        self.day.key(f"exchange-{person}"),
                    )
            except (BusinessRejection, InvalidInput):
                continue  # not enough points to send, or the partner's limit: the member keeps them
            moved += 1
        result.notes.append(f"{moved} members exchanged points with partners")

    def _store_channel(self) -> str | None:
        stores = [c.id for c in self.day.channels if c.type.value == "store"]
        return stores[0] if stores else None

    def _abandoned_cart(self, result: DayResult) -> None:
        """A shopper reserves the last units in a basket and never pays: the reservation expires."""
        online = [c.id for c in self.day.channels if c.type.value == "online"]
        if not online or self.day.clock is None:
            return  # without a clock to move, the basket would still be held when the day is checked
        sku = self.day.skus[0]
        try:
            with self.stack.context(online[0], flow="simulation") as ctx:
                locations = stock_locations(self.hooks, ctx)
                self.hooks.call(
                    inventory.inventory_reserve, ctx, [StockDemand(sku, 1)], locations, True, timedelta(minutes=15)
                )
        except BusinessRejection:
            return
        if self.day.clock is not None:
            self.day.clock.advance(timedelta(minutes=30))
        result.notes.append(f"an abandoned basket held 1 × {sku} for 15 minutes; maintenance released it")

    def _parcels_travel(self, result: DayResult) -> None:
        """Carriers report parcels shipped, in transit and delivered; shoppers collect their pickups."""
        if not self.hooks.implementers(logistics.logistics_track):
            return
        moved = 0
        # Only this run's parcels: an earlier run's are delivered already, another process's are its own.
        for order in self.day.own_order_list(OrderStatus.FULFILLED):
            for shipment in order.shipments:
                steps: list[ShipmentStatus] = []
                if shipment.status is ShipmentStatus.PENDING:
                    steps = [ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELIVERED]
                elif shipment.status is ShipmentStatus.READY_FOR_PICKUP:
                    steps = [ShipmentStatus.COLLECTED]
                for status in steps:
                    with self.stack.context(order.channel, flow="simulation", flow_id=order.id) as ctx:
                        self.hooks.at(
                            shipment.block,
                            logistics.logistics_track,
                            ctx,
                            shipment_id=shipment.id,
                            status=status,
                            note="carrier update",
                        )
                moved += bool(steps)
        result.notes.append(f"{moved} shipments tracked to the door or collected in store")

    def _stock_count(self, result: DayResult) -> None:
        """Closing time: a broken item is written off and a shelf is counted."""
        if not self.day.profile.stock or not self.hooks.provides(inventory.inventory_adjust):
            return
        line = max(self.day.profile.stock, key=lambda stock_line: stock_line.quantity)
        try:
            if self.day.wire is not None:
                self.day.wire.write_off(line.sku, line.location, "broken in the stockroom", self.day.key("write-off"))
                result.stock_adjustments[line.sku] -= 1
                result.notes.append(f"1 × {line.sku} written off at {line.location}")
                return
            with self.stack.context(flow="simulation") as ctx:
                self.hooks.call(
                    inventory.inventory_adjust,
                    ctx,
                    line.sku,
                    line.location,
                    -1,
                    "broken in the stockroom",
                    self.day.key("write-off"),
                )
        except InvalidInput:
            return  # everything on that shelf is sold or held: nothing to break
        result.stock_adjustments[line.sku] -= 1
        result.notes.append(f"1 × {line.sku} written off at {line.location}")

    def _a_year_later(self, result: DayResult) -> None:
        """Unspent points expire after their validity; maintenance posts the expiries."""
        if self.day.clock is None or not self.hooks.provides(membership.membership_identify):
            return
        self.day.clock.advance(timedelta(days=400))
        maintain(self.hooks, lambda: self.stack.context(flow="maintenance"))
        result.notes.append("a year later, unspent points expired")
