"""The block's own refinement of the core's errors."""

from __future__ import annotations

from retailblocks.errors import IdempotencyConflict, InvalidValue


class IdempotencyKeyReused(InvalidValue, IdempotencyConflict):
    """An idempotency key sent again with another request (amount, card or authorization).

    Both an :class:`~retailblocks.errors.InvalidValue` (bad argument) and an
    :class:`~retailblocks.errors.IdempotencyConflict`, so callers may catch either.
    """
