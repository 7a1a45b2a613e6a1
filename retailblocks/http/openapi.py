"""The OpenAPI 3.1 document: what FastAPI derives from the routes, made true to what the server answers.

Every error is a problem document (``application/problem+json``), so every 4xx/5xx response is documented
with the Problem schema; every operation that needs a key documents 401, 403 and 429; the Idempotency-Key
header is documented as required where the route requires it (the server answers 400 without it, as the
IETF draft asks). ``blocks openapi`` writes this document; the committed copy (docs/openapi.json) is
checked by the tests, so a change to the API is a visible diff.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from retailblocks.http.idempotency import HEADER, KEY_PATTERN
from retailblocks.http.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error, as RFC 9457 describes: `type` is stable per kind of error.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:retailblocks:problem:out-of-stock"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "cause": {
            "type": "string",
            "description": (
                "a rejection's cause, finer than its type (`coupon_rejected`, `member_limit_reached`, "
                "`backorder_limit`…)"
            ),
            "examples": ["out_of_stock"],
        },
        "reason": {"type": "string", "description": "a declined payment's reason", "examples": ["insufficient_funds"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"where": {"type": "string"}, "problem": {"type": "string"}},
            },
        },
    },
}
#: How one operation's answer leads to the next (OpenAPI links): clients and stateful tests follow them.
LINKS: dict[tuple[str, str], dict[str, Any]] = {
    ("createOrder", "201"): {
        "ReadOrder": {
            "operationId": "readOrder",
            "parameters": {"path.order_id": "$response.body#/id", "header.Order-Token": "$response.body#/token"},
            "description": "the order just placed, read with the token it came with",
        }
    },
    ("createCart", "201"): {
        "ReadCart": {
            "operationId": "readCart",
            "parameters": {"path.cart_id": "$response.body#/id"},
            "description": "the cart just started",
        },
        "AddCartLine": {
            "operationId": "addCartLine",
            "parameters": {"path.cart_id": "$response.body#/id"},
            "description": "add a line to the cart just started",
        },
    },
}
_KEYED = {
    "401": "no key, or a key this stack does not accept",
    "403": "a key that may not do this",
    "429": "the key's rate limit was reached; see Retry-After",
}
_EVERY = {"413": "the body is larger than the stack allows", "422": "a value that breaks a rule, said where"}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the corrected document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            keyed = bool(operation.get("security"))
            extra = {**_EVERY, **(_KEYED if keyed else {})} if operation.get("parameters") or keyed else {}
            if "requestBody" in operation:
                # A body that is not UTF-8 never reaches validation: FastAPI answers 400 before it.
                extra = {**_EVERY, **(_KEYED if keyed else {}), "400": "a body that cannot be read as JSON"}
            if any(parameter.get("name") == "cursor" for parameter in operation.get("parameters", ())):
                extra["400"] = "a cursor this listing did not hand out"
            for status, description in extra.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = problem_content
                    if response.get("description") == "Validation Error":
                        response["description"] = _EVERY["422"]
            for (operation_id, status), links in LINKS.items():
                if operation.get("operationId") == operation_id:
                    responses[status]["links"] = links
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "header" and parameter.get("name") == HEADER:
                    parameter["required"] = True
                    parameter["schema"] = {"type": "string", "pattern": KEY_PATTERN, "maxLength": 80}
                    parameter["description"] = "the same key with the same body replays the first answer"
    return doc
