"""What every admin route shares: who may call it, POSTs run once per Idempotency-Key, opaque cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials

from retailblocks.errors import InvalidInput
from retailblocks.http.auth import Forbidden, bearer
from retailblocks.http.idempotency import HEADER
from retailblocks.http.state import Api, api_dependency, api_of
from retailblocks.manifest.api import ADMIN_AREAS, ApiKey

ApiDep = Annotated[Api, Depends(api_dependency)]
IdempotencyKey = Annotated[str | None, Header(alias=HEADER, description="required: the POST runs once per key")]

READ_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no key, or a key this stack does not accept"},
    403: {"description": "a store key, or an admin key without this area's scope"},
    422: {"description": "a value that breaks a rule, said where"},
    429: {"description": "the key's rate limit; see Retry-After"},
}
WRITE_PROBLEMS: dict[int | str, dict[str, Any]] = {
    **READ_PROBLEMS,
    400: {"description": f"no or a malformed {HEADER} header"},
    409: {"description": "refused by the stack, or the same key still in progress"},
}


def scoped(area: str, access: str) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency admitting admin keys whose scopes allow ``access`` (read or write) to ``area``."""
    assert area in ADMIN_AREAS and access in ("read", "write"), (area, access)

    async def admin_key(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> ApiKey:
        api = api_of(request)
        key = api.keys.authenticate(credentials.credentials if credentials else None)
        if key.is_store_key:
            raise Forbidden("the admin API takes an admin key; a store key acts only for its channel")
        if not key.allows(area, access):
            raise Forbidden(f"this key has no {area}:{access} scope")
        api.limiter.spend(key)
        return key

    return admin_key


def encode_cursor(kind: str, position: str) -> str:
    """An opaque cursor: where the next page starts, for the listing ``kind`` only."""
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    prefix, sep, position = text.partition(":")
    if prefix != kind or not sep or not position:
        raise InvalidInput("this cursor was not returned by this listing; start again without one")
    return position


def next_link(request: Request, cursor: str) -> str:
    """The request's own path and query with ``cursor`` replaced: the next page, same filters."""
    params = [(name, value) for name, value in request.query_params.multi_items() if name != "cursor"]
    return f"{request.url.path}?{urlencode([*params, ('cursor', cursor)])}"
