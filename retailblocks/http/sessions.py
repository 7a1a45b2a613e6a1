"""Shopper sessions: a token that says "this member, in this channel, until then", signed by the stack.

Issued at sign-in to a channel's server (a store key that ``signs_in_shoppers``), which hands it to the
shopper's app; the app sends it as ``Shopper-Token`` with the channel's key. The token is
``<member>.<channel>.<expiry>.<signature>``, the signature an HMAC-SHA256 under the manifest's
``api.session_secret``; it holds no secret and is checked in constant time. A token of another channel,
an expired one or a forged one is refused alike.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta

HEADER = "Shopper-Token"
TTL = timedelta(days=30)


class BadSession(Exception):
    """401: no shopper token, or one that is not valid here and now."""


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def _sign(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()


def issue(secret: bytes, member_id: str, channel: str, now: datetime) -> tuple[str, datetime]:
    expires = now + TTL
    payload = f"{_b64(member_id)}.{_b64(channel)}.{int(expires.timestamp())}"
    return f"{payload}.{_sign(secret, payload)}", expires


def verify(secret: bytes | None, token: str | None, channel: str, now: datetime) -> str:
    """The member the token was issued for; BadSession if it is missing, forged, expired or another
    channel's."""
    if secret is None:
        raise BadSession("this stack signs no shopper sessions (the manifest has no api.session_secret)")
    if not token:
        raise BadSession(f"sign in first and send the session as {HEADER}")
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _sign(secret, payload).encode()):
        raise BadSession("the shopper session is not valid")
    try:
        member, token_channel, expires = payload.split(".")
        member_id, issued_for = _unb64(member), _unb64(token_channel)
        expired = int(expires) < now.timestamp()
    except ValueError:
        raise BadSession("the shopper session is not valid") from None
    if issued_for != channel or expired:
        raise BadSession("the shopper session is not valid here, or has expired: sign in again")
    return member_id
