"""Gift card numbers: derived from an id, grouped for reading aloud, normalized when typed in.

A number looks like ``GC-7K2M-Q9XD-4HRT``: the prefix, then twelve symbols of Crockford's base 32
(no I, L, O or U, so nothing is misread) taken from a hash of a fresh identifier, i.e. 60 bits.
"""

from __future__ import annotations

import hashlib
import re

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SYMBOLS = 12
_GROUP = 4
# What people type for the letters the alphabet leaves out.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def code_from_id(prefix: str, identifier: str) -> str:
    """The gift card number derived from ``identifier`` (an id from ``ctx.ids``)."""
    digest = int.from_bytes(hashlib.sha256(identifier.encode()).digest()[:8], "big")
    symbols = []
    for _ in range(_SYMBOLS):
        digest, index = divmod(digest, len(_ALPHABET))
        symbols.append(_ALPHABET[index])
    return _grouped(prefix, "".join(symbols))


def _grouped(prefix: str, body: str) -> str:
    groups = [body[i : i + _GROUP] for i in range(0, len(body), _GROUP)]
    return "-".join([prefix, *groups])


def normalize_code(prefix: str, text: str) -> str | None:
    """The canonical form of a typed-in gift card number, or None when ``text`` cannot be one.

    Case, spaces and dashes do not matter, and O, I and L are read as 0, 1 and 1.
    """
    compact = re.sub(r"[\s\-]", "", text).upper()
    if not compact.startswith(prefix.upper()):
        return None
    body = compact[len(prefix) :].translate(_LOOKALIKES)
    if len(body) != _SYMBOLS or any(symbol not in _ALPHABET for symbol in body):
        return None
    return _grouped(prefix.upper(), body)


def mask_code(code: str) -> str:
    """The number with all but its last group hidden, for references, events and logs."""
    parts = code.split("-")
    if len(parts) < 2:
        return "****"
    return "-".join([parts[0], *("****" for _ in parts[1:-1]), parts[-1]])
