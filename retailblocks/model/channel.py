"""Channels: the scenes orders come from."""

from __future__ import annotations

import enum

import attrs

from retailblocks.model._validators import slug


class ChannelType(enum.StrEnum):
    ONLINE = "online"
    STORE = "store"
    MARKETPLACE = "marketplace"
    SOCIAL = "social"


#: The payment method of orders a marketplace collected: the money is the marketplace's to pay over to the
#: merchant, in settlement with the partner its channel ``settles_with``.
MARKETPLACE_PAYMENT_METHOD = "marketplace"


@attrs.frozen
class Channel:
    """A scene where orders come from. A store channel sells from its ``location``; a marketplace channel
    whose orders are paid on the marketplace ``settles_with`` the partner that collected the money."""

    id: str = attrs.field(validator=slug)
    type: ChannelType = attrs.field(converter=ChannelType)
    location: str | None = None
    name: str | None = None
    settles_with: str | None = None


@attrs.frozen
class Merchant:
    id: str = attrs.field(validator=slug)
    name: str
    currency: str
