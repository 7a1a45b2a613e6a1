"""The exceptions retailblocks raises, in one place.

::

    RetailBlocksError
    ├── InvalidInput                 bad input from a person or a caller: exit status 2, HTTP 4xx
    │   ├── InvalidValue (ValueError)    a value that breaks a model's rule
    │   │   └── CurrencyMismatch
    │   ├── ManifestError                a manifest problem, with file, line, column and document path
    │   │                                (defined in retailblocks.manifest.errors, beside its positions)
    │   ├── AssemblyError                blocks that cannot be put together (versions, hooks, routing)
    │   ├── IdempotencyConflict          a key reused with a different request
    │   ├── NotAuthenticated             a caller that could not prove who it is (a bad signature): HTTP 401
    │   └── UnknownObject (LookupError)  something named that does not exist: HTTP 404
    │       ├── UnknownOrder, UnknownSku, UnknownChannel, UnknownMember, UnknownCart
    │       └── CartExpired                  a server-side cart left untouched past its expiry: HTTP 410
    ├── BusinessRejection            a request that was valid but cannot be honoured: exit status 3
    │   ├── OutOfStock
    │   ├── PaymentDeclined
    │   ├── NotDeliverable
    │   ├── NotRefundable
    │   ├── PromotionRejected            a coupon that does not apply, a promotion's limit reached
    │   │   └── MemberLimitReached           the member has used a promotion as often as it allows them
    │   ├── ExchangeLimitReached         points exchanged with a partner up to the member's daily limit
    │   ├── CartClosed                   a cart checked out (or being checked out) cannot change
    │   ├── CampaignNotRunning           a campaign run before its first day or after its last
    │   └── StaleVersion                 a change made against a version of a cart that is not current
    ├── EnvironmentFailure           the world failed: database unreachable: exit status 1
    │   └── FlowTakenOver                a process stalled past its lease and recovery took its flow over
    ├── FlowStuck                    a flow stopped half-way for a reason a retry cannot cure: exit status 1
    ├── FlowStillRunning             the same request is still being worked on elsewhere: exit status 1
    ├── PaymentOutcomeUnknown        a provider could not say whether it charged
    ├── TableAccessDenied (PermissionError)  a block touched a table its permissions do not grant
    └── BlockFailure                 a block raised; wraps the original with the block's name

Every one of them survives pickling (they cross process boundaries: server workers, simulations).
"""

from __future__ import annotations

import difflib
import pickle
from collections.abc import Iterable
from typing import Any


def suggestion(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when ``word`` is close to one of ``choices``, else ``""``: the tail every
    "unknown name" message of the core and of blocks ends with."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class RetailBlocksError(Exception):
    """Base of every error retailblocks raises on purpose."""

    exit_status = 1


class InvalidInput(RetailBlocksError):
    exit_status = 2


class InvalidValue(InvalidInput, ValueError):
    """A value that breaks a model's rule; the message says what was expected and what came."""


class CurrencyMismatch(InvalidValue):
    pass


class AssemblyError(InvalidInput):
    """Blocks cannot be put together. ``block`` and ``distribution`` name the culprit when one is known."""

    def __init__(self, message: str, *, block: str | None = None, distribution: str | None = None):
        super().__init__(message)
        self.block = block
        self.distribution = distribution


class IdempotencyConflict(InvalidInput):
    pass


class UnknownObject(InvalidInput, LookupError):
    pass


class NotAuthenticated(InvalidInput):
    """A caller that could not prove who it is: a missing, forged or stale signature on a notification a
    block's route receives. The message says which, never what was expected."""


class UnknownOrder(UnknownObject):
    pass


class UnknownSku(UnknownObject):
    pass


class UnknownChannel(UnknownObject):
    pass


class UnknownMember(UnknownObject):
    pass


class UnknownCart(UnknownObject):
    pass


class CartExpired(UnknownObject):
    """The cart was left untouched past its ``expires_at``; start a new one."""


class BusinessRejection(RetailBlocksError):
    """A valid request that cannot be honoured. ``cause`` is a short stable word for reports."""

    exit_status = 3
    cause = "rejected"


class OutOfStock(BusinessRejection):
    cause = "out_of_stock"

    def __init__(self, message: str, *, sku: str | None = None, requested: int = 0, available: int = 0):
        super().__init__(message)
        self.sku = sku
        self.requested = requested
        self.available = available


class PaymentDeclined(BusinessRejection):
    cause = "payment_declined"

    def __init__(self, message: str, *, reason: str = "declined"):
        super().__init__(message)
        self.reason = reason


class PaymentOutcomeUnknown(RetailBlocksError):
    """The gateway did not say whether it charged; resolve with a status query, never by retrying blind."""


class NotDeliverable(BusinessRejection):
    cause = "not_deliverable"


class NotRefundable(BusinessRejection):
    cause = "not_refundable"


class PromotionRejected(BusinessRejection):
    cause = "coupon_rejected"


class MemberLimitReached(PromotionRejected):
    """The member has already used the promotion as many times as it allows one member: unlike a coupon
    that does not apply, pricing the cart again will not help this member."""

    cause = "member_limit_reached"


class ExchangeLimitReached(BusinessRejection):
    """The member has exchanged as many points (or as many times) with the partner today as the
    programme allows one member a day: trying again the same day will not help."""

    cause = "exchange_limit_reached"


class CartClosed(BusinessRejection):
    """The cart is checked out (or its checkout is under way): it no longer changes."""

    cause = "cart_closed"


class CampaignNotRunning(BusinessRejection):
    """The campaign has not started yet, or has ended: running it would reach no one."""

    cause = "campaign_not_running"


class StaleVersion(BusinessRejection):
    """The caller changed a cart as of a version that is no longer current (someone else changed it
    since): read it again, and apply the change to what it holds now."""

    cause = "stale_version"


class EnvironmentFailure(RetailBlocksError):
    exit_status = 1


class FlowTakenOver(EnvironmentFailure):
    """This process held a flow past its lease (a pause, a slow provider) and recovery took it over: the
    step it was finishing was undone, and the flow's outcome is the new owner's. Asking again with the
    same key returns that outcome."""


class FlowStuck(RetailBlocksError):
    """A flow stopped half-way for a reason a retry cannot cure; an operator must look at it.

    ``saga_id`` names the flow, ``step`` where it stopped and ``reason`` why. ``blocks recover`` lists
    stuck flows and ``blocks recover --retry-stuck`` runs them again once the cause is mended.
    """

    exit_status = 1

    def __init__(self, message: str, *, saga_id: str = "", step: str = "", reason: str = ""):
        super().__init__(message)
        self.saga_id = saga_id
        self.step = step
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        keywords = {"saga_id": self.saga_id, "step": self.step, "reason": self.reason}
        return (_rebuild, (type(self), (str(self),), keywords))


class FlowStillRunning(RetailBlocksError):
    """A request with the same key is still running (in another process, or left for recovery); ask again
    later with the same key for its outcome."""

    exit_status = 1


class TableAccessDenied(RetailBlocksError, PermissionError):
    """A block wrote to a table it does not own, or read a core table it did not declare, while the table
    permission guard was on (tests, ``RETAILBLOCKS_ENFORCE_PERMISSIONS=1``). ``block`` names the block,
    ``table`` the table and ``access`` is ``"write"`` or ``"read"``."""

    def __init__(self, message: str, *, block: str = "", table: str = "", access: str = ""):
        super().__init__(message)
        self.block = block
        self.table = table
        self.access = access

    def __reduce__(self) -> tuple[Any, ...]:
        keywords = {"block": self.block, "table": self.table, "access": self.access}
        return (_rebuild, (type(self), (str(self),), keywords))


class BlockFailure(RetailBlocksError):
    """A block raised something that is not one of ours; names the block so operators know whom to blame."""

    def __init__(self, block: str, hook: str, error: BaseException):
        super().__init__(f"block {block!r} failed in {hook}: {type(error).__name__}: {error}")
        self.block = block
        self.hook = hook
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        # The wrapped error may not pickle (it may hold a connection or a lock): its type and message do.
        try:
            pickle.dumps(self.error)
            error = self.error
        except Exception:
            error = RuntimeError(f"{type(self.error).__name__}: {self.error}")
        return (_rebuild_failure, (type(self), self.block, self.hook, error, str(self)))


def _rebuild(kind: type[BaseException], args: tuple[Any, ...], keywords: dict[str, Any]) -> BaseException:
    """Unpickle an error whose constructor takes keywords (errors cross process boundaries)."""
    return kind(*args, **keywords)


def _rebuild_failure(
    kind: type[BlockFailure], block: str, hook: str, error: BaseException, message: str
) -> BlockFailure:
    rebuilt = kind(block, hook, error)
    rebuilt.args = (message,)
    return rebuilt


def describe(error: BaseException) -> dict[str, Any]:
    """A JSON-friendly description of an error for logs and reports."""
    return {"type": type(error).__name__, "message": str(error)}
