"""Scenes connected: click and collect, ship from store, endless aisle and scan-and-go all go through the
one checkout flow, and all land on the same member's timeline."""

from __future__ import annotations

from retailblocks.fusion import catch_up, member_view
from retailblocks.model import Address, Fulfilment, FulfilmentKind, Identity, OrderStatus
from retailblocks.stack import Stack
from tests.helpers import cart, levels, receive

OPENID = (Identity("openid", "o-wang"),)
HOME = Fulfilment(FulfilmentKind.DELIVERY, Address(country="CN", region="Shanghai", latitude=31.2, longitude=121.45))


def test_every_scene_goes_through_the_one_flow_onto_one_timeline(stack: Stack) -> None:
    bopis = stack.checkout(
        cart(("MUG", 1), identities=OPENID, fulfilment=Fulfilment(FulfilmentKind.PICKUP, pickup_location="store-a")),
        key="bopis",
    )
    # The warehouse runs out of tea, so the mini-program's delivery ships from the store.
    receive(stack, {"TEA": -20})
    from_store = stack.checkout(cart(("TEA", 2), identities=OPENID, fulfilment=HOME), key="ship-from-store")
    # The store has sold out of beans; its endless aisle sells the warehouse's and ships them home.
    receive(stack, {"BEANS": -20}, locations=("store-a",))
    aisle = stack.checkout(cart(("BEANS", 1), channel="store-a", identities=OPENID, fulfilment=HOME), key="aisle")
    # Scan-and-go: she scans a mug in the store and pays in the mini-program, which knows her openid.
    scan = stack.checkout(
        cart(("MUG", 1), channel="store-a", identities=OPENID, fulfilment=Fulfilment(FulfilmentKind.CARRY_OUT)),
        key="scan-and-go",
    )
    orders = (bopis, from_store, aisle, scan)
    assert all(o.status is OrderStatus.FULFILLED for o in orders)
    assert len({o.member_id for o in orders}) == 1
    assert [p.location for p in from_store.shipments[0].parcels] == ["store-a"]
    assert [p.location for p in aisle.shipments[0].parcels] == ["dc"]
    assert levels(stack)[("BEANS", "dc")][0] == 19  # the aisle's bag left the warehouse

    catch_up(stack)
    with stack.context(flow="test", read_only=True) as ctx:
        profile, timeline = member_view(stack, ctx, identity="openid:o-wang")
    assert [e.order_id for e in timeline if e.kind == "order.placed"] == [o.id for o in orders]
    assert len([e for e in timeline if e.kind == "store.visit"]) == 2  # the aisle sale and the scan
    assert profile.channel_mix == {"store-a": 2, "web": 2}
