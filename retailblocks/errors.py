"""The exceptions retailblocks raises, in one place.

::

    RetailBlocksError
    ├── InvalidInput                 bad input from a person or a caller: exit status 2, HTTP 4xx
    │   ├── InvalidValue (ValueError)    a value that breaks a model's rule
    │   │   └── CurrencyMismatch
    │   ├── ManifestError                a manifest problem, with file, line, column and document path
    │   ├── AssemblyError                blocks that cannot be put together (versions, hooks, routing)
    │   ├── IdempotencyConflict          a key reused with a different request
    │   └── UnknownOrder, UnknownSku, UnknownChannel, UnknownMember
    ├── BusinessRejection            a request that was valid but cannot be honoured
    │   ├── OutOfStock
    │   ├── PaymentDeclined
    │   ├── NotDeliverable
    │   └── NotRefundable
    ├── EnvironmentFailure           the world failed: database unreachable: exit status 1
    └── BlockFailure                 a block raised; wraps the original with the block's name
"""

from __future__ import annotations

from typing import Any


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


class UnknownOrder(UnknownObject):
    pass


class UnknownSku(UnknownObject):
    pass


class UnknownChannel(UnknownObject):
    pass


class UnknownMember(UnknownObject):
    pass


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


class EnvironmentFailure(RetailBlocksError):
    exit_status = 1


class BlockFailure(RetailBlocksError):
    """A block raised something that is not one of ours; names the block so operators know whom to blame."""

    def __init__(self, block: str, hook: str, error: BaseException):
        super().__init__(f"block {block!r} failed in {hook}: {type(error).__name__}: {error}")
        self.block = block
        self.hook = hook
        self.error = error


def describe(error: BaseException) -> dict[str, Any]:
    """A JSON-friendly description of an error for logs and reports."""
    return {"type": type(error).__name__, "message": str(error)}
