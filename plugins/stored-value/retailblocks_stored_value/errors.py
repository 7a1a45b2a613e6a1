"""The block's own error: an idempotency key reused for a different request."""

from __future__ import annotations

from retailblocks.errors import IdempotencyConflict, InvalidValue


class KeyReused(IdempotencyConflict, InvalidValue):
    """An idempotency key already used for a different posting (another amount, account or kind).

    Both an :class:`~retailblocks.errors.InvalidValue`, as the payment contract asks, and an
    :class:`~retailblocks.errors.IdempotencyConflict`, which is what it is.
    """
