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


@attrs.frozen
class Channel:
    """A scene where orders come from. A store channel sells from its ``location``."""

    id: str = attrs.field(validator=slug)
    type: ChannelType = attrs.field(converter=ChannelType)
    location: str | None = None
    name: str | None = None


@attrs.frozen
class Merchant:
    id: str = attrs.field(validator=slug)
    name: str
    currency: str
