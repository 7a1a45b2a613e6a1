"""Lifecycle hooks: storage, start-up and shut-down, housekeeping and event delivery.

Any block may implement these; none is required.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from retailblocks.errors import suggestion
from retailblocks.hookspecs._markers import Dispatch, contract

if TYPE_CHECKING:
    from retailblocks.context import AuditFinding, Event, FlowContext, RouteStack, StackView
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
    """The stack is assembled and its storage is ready. Called once per process.

    .. versionchanged:: 1.1 ``stack`` is a :class:`~retailblocks.context.StackView`.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_shutdown(stack: StackView) -> None:
    """The stack is closing. Release what ``stack_startup`` acquired.

    .. versionchanged:: 1.1 ``stack`` is a :class:`~retailblocks.context.StackView`.
    """


class AsgiApp(Protocol):
    """An ASGI 3 application: what :func:`stack_routes` returns. Any framework's app is one (a FastAPI or
    Starlette app, a router wrapped in one), and so is a plain ``async def app(scope, receive, send)``;
    the core names no framework here."""

    def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
        /,
    ) -> Awaitable[None]: ...


@contract(Dispatch.EVERY_BLOCK)
def stack_routes(stack: RouteStack) -> AsgiApp | None:
    """The block's own HTTP routes, as one ASGI app, or None for none. ``blocks serve`` (and
    :func:`retailblocks.http.create_app`) mounts it under ``/blocks/{block_id}``: a request to
    ``/blocks/card/notifications`` reaches the app with ``path`` ``/notifications`` and ``root_path``
    ``/blocks/card``. This is how a provider's asynchronous notifications (a payment's outcome, a
    parcel's scan) reach the block.

    The core checks no API key on these routes: the block authenticates its callers itself (a signature
    over the body, as providers send). The server's body limit, access log and request id still apply,
    and an error the app raises before it answers becomes a problem document: a
    :class:`~retailblocks.errors.RetailBlocksError` by its class (``NotAuthenticated`` 401,
    ``InvalidInput`` 400, ``UnknownObject`` 404, …), anything else 502 naming only the block. The
    routes are not in the core's OpenAPI document.

    ``stack`` (:class:`~retailblocks.context.RouteStack`) is what a route may use: the stack's clock and
    flow contexts whose unit of work commits when the ``with`` block ends. Database work is synchronous:
    run it off the event loop. Called once per server process, after ``stack_startup``.

    .. versionadded:: 1.2
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_maintain(ctx: FlowContext) -> None:
    """Housekeeping that time makes due: release expired reservations, expire points, resolve payments
    whose outcome was unknown. Called by ``blocks recover`` and the event dispatcher; must be idempotent.
    Each block's housekeeping runs in a transaction of its own (``ctx.db``), apart from every other
    block's.
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_event(event: Event, ctx: FlowContext) -> None:
    """Receive one event from the outbox. Delivery is at least once: the same event may arrive again after
    a failure, so a listener must be idempotent (``event.id`` is stable; ``event`` is an
    :class:`~retailblocks.context.Event`). Raising makes the core retry the
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
def stack_erase_member(ctx: FlowContext, member_id: str, replacements: Mapping[str, str]) -> None:
    """Erase a member from the block's own tables (a data-subject request, GDPR art. 17 / PIPL art. 47):
    every personal identifier the member was known by (the keys of ``replacements``: phone numbers,
    e-mail addresses, openids, union ids, and any names or addresses the block holds) is replaced by its
    token (the value), wherever the block stores it: columns, JSON documents, keys. Ids, amounts and
    ledger rows stay, so every balance and audit holds afterwards. :func:`retailblocks.storage.erasure.pseudonymise`
    does it for a list of tables. Runs in the erasure's one transaction; must be idempotent (a second
    call finds nothing left to replace).

    .. versionadded:: 1.5
    """


@contract(Dispatch.EVERY_BLOCK)
def stack_names() -> Mapping[str, Sequence[str]]:
    """The names the block's configuration declares that the rest of the manifest may refer to, by kind:
    ``{"location": [...]}`` for stock locations, ``"promotion"`` for promotion ids, ``"tier"`` for
    membership tiers. Assembly adds them to what the manifest itself declares and hands the whole to
    :func:`stack_check`, so that a reference anywhere to a name nothing declares fails at
    ``blocks assemble --check`` instead of at the first order that needs it.

    .. versionadded:: 1.1
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
    an empty set. :func:`unknown` words a problem with a suggestion. ``merchant`` is the manifest's
    merchant (its currency among others) and ``channels`` its channels, in manifest order.

    .. versionchanged:: 1.1 receives ``names``.
    """


@contract(Dispatch.ROUTED, route="method")
def simulation_payment_details(method: str, details: Mapping[str, str], rng: random.Random) -> Mapping[str, str] | None:
    """The payment details one simulated shopper sends with ``method`` (``blocks simulate``, ``blocks
    demo``): routed to the block that takes the method, so a block can simulate its own method as its
    real customers would pay with it (a wallet id, a QR token, a test card).

    ``details`` are what the simulation profile gives for this payment choice (its ``details:``, and
    ``card_number`` for cards); they may be empty. Return the details to send, or None to send the
    profile's as they are. Draw anything random from ``rng`` alone: it is derived from the day's seed and
    the shopper's number, so the day stays reproducible from its seed, and what a block draws does not
    change what the rest of the day draws. Called outside any flow: the block reads nothing and writes
    nothing. Never return a secret (a key of the block's configuration): details are stored with the order.

    .. versionadded:: 1.3
    """


#: The kinds of name ``stack_check`` receives (and ``stack_names`` may add to): what each is called in
#: a message, and how a merchant declares one.
NAME_KINDS: Mapping[str, tuple[str, str]] = {
    "channel": ("channel", "declare it under 'channels:'"),
    "channel_type": ("channel type", "one of online, marketplace, social, store"),
    "sku": ("SKU", "add it to 'catalog:'"),
    "category": ("category", "give a catalog product that 'category'"),
    "partner": ("partner", "declare it under 'partners:'"),
    "segment": ("segment", "declare it under 'segments:'"),
    "location": ("location", "give it to a store channel or an inventory block's 'locations'"),
    "promotion": ("promotion", "configure it in a marketing block"),
    "tier": ("membership tier", "configure it in a membership block's 'tiers'"),
}


def unknown(field: str, kind: str, value: str, known: Collection[str]) -> str:
    """A :func:`stack_check` problem about a name nothing declares, worded as the core words its own:
    ``field: unknown <what> 'value'; did you mean 'x'? (known: a, b)``, or how to declare one when
    none is known. ``kind`` is one of :data:`NAME_KINDS` (another is used as its own word)."""
    what, how = NAME_KINDS.get(kind, (kind, ""))
    listed = ", ".join(sorted(known)) if known else f"none; {how}" if how else "none"
    return f"{field}: unknown {what} {value!r}{suggestion(value, sorted(known))} (known: {listed})"
