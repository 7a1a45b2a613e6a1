"""The reach contract: a message to one member through a medium (a mini-program's subscription message,
an SMS, an e-mail, an app push).

Every reach block says which ``reach_mediums`` it serves; the core sends each message through the first
block, in manifest order, that serves its medium. Campaigns send through it (retailblocks.fusion.campaigns):
the core decides who is sent what and when (holdout, send window, frequency caps), the block delivers and
keeps what a provider keeps — addresses, opt-outs, delivery receipts.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import FlowContext
    from retailblocks.model import Member

#: The mediums a campaign may name; a block serves some of them.
MEDIUMS = ("mini_program", "sms", "email", "push")


class DeliveryStatus(enum.StrEnum):
    #: The provider accepted the message for the member's address.
    SENT = "sent"
    #: The provider refused or failed; ``reason`` says why. Nothing was delivered.
    FAILED = "failed"
    #: The member opted out of this medium: nothing was sent.
    OPTED_OUT = "opted_out"
    #: The member has no identity the medium can reach (no phone for an SMS): nothing was sent.
    NO_ADDRESS = "no_address"


@attrs.frozen
class ReachMessage:
    """What to send: ``text`` to ``member`` by ``medium``, on behalf of the merchant's ``channel`` (the scene the
    message leads back to), for ``campaign`` when a campaign sends it."""

    member: Member
    medium: str
    channel: str
    text: str
    campaign: str | None = None


@attrs.frozen
class ReachDelivery:
    """What became of one message: sent (with the provider's ``reference``), or why not."""

    block: str
    medium: str
    status: DeliveryStatus
    reference: str = ""
    reason: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is DeliveryStatus.SENT


@contract(Dispatch.EVERY_BLOCK, required=True)
def reach_send(ctx: FlowContext, message: ReachMessage, idempotency_key: str) -> ReachDelivery | None:
    """Send ``message``, or say why it was not sent. None when the block does not serve ``message.medium``.

    A failure of the provider is a delivery with status ``failed`` and a ``reason``, not an exception: a
    campaign goes on with the next member. A member who opted out of the medium gets nothing (status
    ``opted_out``). Idempotent per key: the same key answers the first delivery without sending again, so
    a campaign run again after a crash never sends one member the same message twice. Record an event for
    every delivery (never with the member's address in clear).

    .. versionadded:: 1.4
    """


@contract(Dispatch.EVERY_BLOCK, required=True)
def reach_opt_out(ctx: FlowContext, member_id: str, medium: str, source: str) -> bool | None:
    """Record that ``member_id`` wants no more messages by ``medium`` (``source``: where they said so — a
    reply STOP, an unsubscribe link, a customer-service note). None when the block does not serve
    ``medium``; True once recorded (also when it was recorded before). Every later :func:`reach_send` to the
    member by that medium answers ``opted_out``.

    .. versionadded:: 1.4
    """
