"""Members and the identities by which channels know them."""

from __future__ import annotations

import enum

import attrs

from retailblocks.model._validators import text
from retailblocks.model.limits import MAX_IDENTITY_LENGTH


class IdentityKind(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    MINIPROGRAM_OPENID = "openid"
    MARKETPLACE_ACCOUNT = "marketplace"
    STORE_CARD = "store_card"
    SOCIAL = "social"
    #: A mini-program platform's id for one person across all of a brand's apps on it (WeChat's unionid),
    #: written ``platform:id``; it ties the app-scoped openids of one person to one member.
    UNION_ID = "union_id"


@attrs.frozen
class Identity:
    """One way a channel knows a person: ``Identity("phone", "+8613800000000")``."""

    kind: IdentityKind = attrs.field(converter=IdentityKind)
    value: str = attrs.field(validator=text("an identity's value", MAX_IDENTITY_LENGTH))
    #: The channel checked that the person controls it (an SMS code, a platform's signed phone number).
    #: Not part of the identity's equality: a verified phone is the same phone.
    verified: bool = attrs.field(default=False, eq=False, kw_only=True)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.value}"


@attrs.frozen
class Member:
    """A person in the merchant's programme, as membership knows them now."""

    id: str
    identities: tuple[Identity, ...] = ()
    tier: str = "base"
    points: int = 0
    segments: frozenset[str] = frozenset()
