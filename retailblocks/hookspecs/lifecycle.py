"""Lifecycle hooks: storage, start-up and shut-down, housekeeping and event delivery.

Any block may implement these; none is required.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import AuditFinding, Event, FlowContext, StackView
    from retailblocks.model import Channel, Merchant
    from retailblocks.storage.migrations import Migration


@contract(Dispatch.EVERY_BLOCK)
def stack_migrations() -> Sequence[Migration]:
    """Return the block's schema migrations, oldest first.

    Each :class:`~retailblocks.storage.migrations.Migration` has a version (1, 2, …) and a function that
    upgrades the database by one version. Tables a block owns are prefixed with the block's name. The core
    records the version reached per owner, so upgrading one block migrates only that block's tables.
    Called once per block at ``blocks assemble``.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_startup(stack: StackView) -> None:
    """The stack is assembled and its storage is ready. Called once per process."""


@contract(Dispatch.EVERY_BLOCK)
def stack_shutdown(stack: StackView) -> None:
    """The stack is closing. Release what ``stack_startup`` acquired."""


@contract(Dispatch.EVERY_BLOCK)
def stack_maintain(ctx: FlowContext) -> None:
    """Housekeeping that time makes due: release expired reservations, expire points, resolve payments
    whose outcome was unknown. Called by ``blocks recover`` and the event dispatcher; must be idempotent.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_event(event: Event, ctx: FlowContext) -> None:
    """Receive one event from the outbox. Delivery is at least once: the same event may arrive again after
    a failure, so a listener must be idempotent (``event.id`` is stable). Raising makes the core retry the
    delivery later; after repeated failures the delivery is recorded as a dead letter.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_audit(ctx: FlowContext) -> Sequence[AuditFinding]:
    """Check the block's own invariants and report each as an :class:`AuditFinding`: a ledger's entries sum
    to zero, every balance equals the sum of its entries, nothing is negative, on hand equals the sum of
    stock movements. ``blocks simulate`` and ``blocks audit`` print them; a failed finding fails the run.
    Read-only.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_names() -> Mapping[str, Sequence[str]]:
    """The names the block's configuration declares that the rest of the manifest may refer to, by kind:
    ``{"location": [...]}`` for stock locations, ``"promotion"`` for promotion ids, ``"tier"`` for
    membership tiers. Assembly adds them to what the manifest itself declares and hands the whole to
    :func:`stack_check`, so that a reference anywhere to a name nothing declares fails at
    ``blocks assemble --check`` instead of at the first order that needs it.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_check(merchant: Merchant, channels: Sequence[Channel], names: Mapping[str, frozenset[str]]) -> Sequence[str]:
    """Check the block's configuration against the rest of the manifest before anything is written: a
    channel id the manifest does not declare, money in another currency than the merchant's, a SKU the
    catalog lacks. Return one sentence per problem, starting with the configuration field it is about and a
    colon (``channels.wbe: …``, ``pickup_locations[0]: …``); assembly reports the first at that field in the
    manifest (at the block's ``config`` when the field cannot be found). Called once per block during
    assembly, ``blocks assemble --check`` included.

    ``names`` is everything the manifest declares, by kind: ``"channel"`` (channel ids),
    ``"channel_type"``, ``"sku"`` and ``"category"`` (of the catalog), ``"partner"``, ``"segment"``,
    ``"location"`` (the channels' locations and every block's declared stock locations), and whatever
    else blocks declare with :func:`stack_names` (``"promotion"``, ``"tier"``). A kind nothing declares is
    an empty set. :func:`retailblocks.assembly.references.unknown` words a problem with a suggestion.
    """
