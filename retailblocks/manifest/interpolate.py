"""``${VAR}`` interpolation of manifest strings from the environment, so secrets stay out of the
file.

``${NAME}`` is replaced by the variable's value, anywhere in a string; ``${NAME:-fallback}`` uses
``fallback`` when the variable is unset (as shells and compose files do); ``$${`` stands for a literal
``${``; a ``$`` not followed by ``{`` is left alone (``price: $5`` means what it says).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Interpolated(str):
    """Text that ``${VAR}`` interpolation produced: equal to and used as the plain string, but its repr
    is masked.

    The environment is where secrets are kept, and a value cannot tell whether it is one; masking every
    interpolated value keeps it out of the repr of whatever holds it (a manifest, a plan, a block's
    configuration) without each of those having to know which of its fields came from the environment.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


class InterpolationError(ValueError):
    """A ``${…}`` that cannot be expanded; ``variable`` names the variable when there is one."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def has_reference(text: str) -> bool:
    """Whether ``text`` would change under interpolation (a reference, or an escaped ``$${``)."""
    return "${" in text


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with every ``${NAME}`` replaced from ``environ`` and every ``$${`` turned into
    ``${``."""
    return expand(text, environ)[0]


def expand(text: str, environ: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """Like :func:`interpolate`, and also the names of the variables that were used, in order."""
    out: list[str] = []
    used: list[str] = []
    i = 0
    while True:
        start = text.find("$", i)
        if start < 0:
            out.append(text[i:])
            return "".join(out), tuple(used)
        out.append(text[i:start])
        if text.startswith("$${", start):
            out.append("${")
            i = start + 3
        elif text.startswith("${", start):
            end = text.find("}", start + 2)
            if end < 0:
                raise InterpolationError("unterminated '${' (write '$${' for a literal '${')")
            name, has_fallback, fallback = text[start + 2 : end].partition(":-")
            if not _NAME.fullmatch(name):
                raise InterpolationError(
                    f"invalid variable name {name!r} in '${{…}}'; names are letters, digits and '_'"
                )
            if name not in environ and has_fallback:
                out.append(fallback)
                i = end + 1
                continue
            if name not in environ:
                raise InterpolationError(f"environment variable {name!r} is not set", variable=name)
            out.append(environ[name])
            used.append(name)
            i = end + 1
        else:
            out.append("$")
            i = start + 1
