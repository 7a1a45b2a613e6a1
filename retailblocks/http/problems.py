"""Every HTTP error is a problem document (RFC 9457, ``application/problem+json``).

Each error class of :mod:`retailblocks.errors` has one stable ``type`` and status, following the CLI's
exit classes: invalid input is 400/404/422, a business rejection 402/409, the environment 503. A block's
failure is 502 and names only the block and hook: the block's own message may carry what a caller must not
see. Nothing here ever echoes a key, a session token or a payment detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi.responses import JSONResponse

from retailblocks import errors

PROBLEM_JSON = "application/problem+json"
#: Problem types are URNs of this project: stable names a client can switch on, not pages to fetch.
TYPE_PREFIX = "urn:retailblocks:problem:"

#: Error class → (status, type, title); the first class in the error's MRO that is listed wins.
_BY_CLASS: dict[type[BaseException], tuple[int, str, str]] = {
    errors.IdempotencyConflict: (422, "idempotency-key-reused", "Idempotency key reused with another request"),
    errors.CartExpired: (410, "cart-expired", "Cart expired"),
    errors.UnknownObject: (404, "not-found", "Not found"),
    errors.NotAuthenticated: (401, "unauthenticated", "Not authenticated"),
    errors.CurrencyMismatch: (422, "currency-mismatch", "Currency mismatch"),
    errors.InvalidValue: (422, "invalid-value", "Invalid value"),
    errors.InvalidInput: (400, "invalid-input", "Invalid input"),
    errors.OutOfStock: (409, "out-of-stock", "Out of stock"),
    errors.PaymentDeclined: (402, "payment-declined", "Payment declined"),
    errors.NotDeliverable: (409, "not-deliverable", "Not deliverable"),
    errors.NotRefundable: (409, "not-refundable", "Not refundable"),
    errors.MemberLimitReached: (409, "member-limit-reached", "The member's limit for a promotion is reached"),
    errors.PromotionRejected: (409, "promotion-rejected", "Promotion rejected"),
    errors.CartClosed: (409, "cart-closed", "Cart closed"),
    errors.StaleVersion: (412, "stale-version", "The cart changed since the version given"),
    errors.BusinessRejection: (409, "rejected", "Rejected"),
    errors.FlowStillRunning: (409, "still-running", "The same request is still being worked on"),
    errors.FlowStuck: (503, "flow-stuck", "The flow stopped half-way and waits for an operator"),
    errors.PaymentOutcomeUnknown: (503, "payment-outcome-unknown", "The payment provider could not say"),
    errors.EnvironmentFailure: (503, "unavailable", "Service unavailable"),
    errors.BlockFailure: (502, "block-failed", "A block failed"),
    errors.RetailBlocksError: (500, "internal", "Internal error"),
}


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_PREFIX + kind, "title": title, "status": status, "detail": detail}
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def problem_for(error: errors.RetailBlocksError) -> JSONResponse:
    """The problem document of a retailblocks error."""
    for cls in type(error).__mro__:
        found = _BY_CLASS.get(cls)
        if found is not None:
            break
    else:  # pragma: no cover - RetailBlocksError is always listed
        found = _BY_CLASS[errors.RetailBlocksError]
    status, kind, title = found
    if (
        isinstance(error, errors.BusinessRejection)
        and cls is errors.BusinessRejection
        and error.cause != errors.BusinessRejection.cause
    ):
        # A block's own rejection (not enough points) gets a type from its stable cause word.
        kind = error.cause.replace("_", "-")
    if isinstance(error, errors.BlockFailure):
        detail = f"block {error.block!r} failed in {error.hook}; the operator's logs say more"
    elif status >= 500 and not isinstance(error, errors.FlowStuck | errors.EnvironmentFailure):
        detail = "the server could not complete the request; it is safe to retry with the same Idempotency-Key"
    else:
        detail = str(error)
    headers = {"Retry-After": "1"} if isinstance(error, errors.FlowStillRunning | errors.EnvironmentFailure) else {}
    # A rejection says its cause (and a declined payment its reason) too: what the CLI and a day's summary
    # count by, finer than the type (a coupon refused is a promotion-rejected problem).
    extra: dict[str, str] = {}
    if isinstance(error, errors.BusinessRejection):
        extra["cause"] = error.cause
    if isinstance(error, errors.PaymentDeclined):
        extra["reason"] = error.reason
    return problem(status, kind, title, detail, headers=headers, extra=extra)


def validation_problem(problems: Sequence[Mapping[str, Any]]) -> JSONResponse:
    """A request whose body, path or query does not match the operation's schema: each problem with where
    it is (``body.lines[0].quantity``) and what is wrong; the value sent is never echoed."""
    found = [
        {"where": ".".join(str(part) for part in item.get("loc", ())), "problem": str(item.get("msg", "invalid"))}
        for item in problems
    ]
    detail = "; ".join(f"{item['where']}: {item['problem']}" for item in found[:5])
    return problem(422, "invalid-request", "Invalid request", detail, extra={"errors": found})
