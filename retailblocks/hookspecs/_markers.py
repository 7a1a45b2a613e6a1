"""The pluggy markers of the ``retailblocks`` project, and :func:`contract`: how a hook is dispatched.

Every hook specification says, on its marker and nowhere else, how the core dispatches it and whether a
block that provides its capability must implement it. The required-hook lists, routing, the assembly
description and the typed face (:class:`retailblocks.assembly.hooks.Hooks`) are all derived from it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import pluggy

PROJECT = "retailblocks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

F = TypeVar("F", bound=Callable[..., Any])


class Dispatch(enum.StrEnum):
    #: Answered by the one block that provides the capability (two implementers fail assembly).
    ONE_PROVIDER = "one provider"
    #: Answered by one block chosen per call: by the payment method an argument names, or by the block
    #: recorded on an existing object (the authorization, the quote, the shipment it concerns).
    ROUTED = "routed"
    #: Every implementing block contributes, in manifest order (``tryfirst``/``trylast`` move a block to
    #: the front or the back).
    EVERY_BLOCK = "every block"


@attrs.frozen
class Contract:
    dispatch: Dispatch
    #: Whether a block that declares the hook's capability must implement it.
    required: bool = False
    #: For ROUTED hooks, the argument that names the block: a payment method (text), or an object whose
    #: ``block`` says which block made it. None: the caller names the block.
    route: str | None = None
    #: The older hook this one replaces: a block implementing that one instead still provides the
    #: capability (the core calls the old form for it, and pluggy warns that it is deprecated).
    supersedes: str | None = None


CONTRACT_ATTRIBUTE = f"{PROJECT}_contract"


def contract(
    dispatch: Dispatch,
    *,
    required: bool = False,
    route: str | None = None,
    supersedes: str | None = None,
    deprecated: str | None = None,
) -> Callable[[F], F]:
    """Mark a hook specification: how it is dispatched, whether providers must implement it, which older
    hook it supersedes. ``deprecated`` (what to use instead) makes pluggy warn, with a
    DeprecationWarning pointing at the implementation, when a block implementing the hook is registered
    (``warn_on_impl``)."""

    def mark(function: F) -> F:
        setattr(function, CONTRACT_ATTRIBUTE, Contract(dispatch, required, route, supersedes))
        warning = None
        if deprecated is not None:
            warning = DeprecationWarning(f"{function.__name__} is deprecated: {deprecated}")
        # One answer for one-provider and routed hooks: pluggy's own calls (pm.hook.<name>) agree.
        marked: F = hookspec(firstresult=dispatch is not Dispatch.EVERY_BLOCK, warn_on_impl=warning)(function)
        return marked

    return mark


def contract_of(spec: Callable[..., Any]) -> Contract:
    found = getattr(spec, CONTRACT_ATTRIBUTE, None)
    if not isinstance(found, Contract):
        raise TypeError(f"{getattr(spec, '__name__', spec)!r} is not a hook specification of this project")
    return found
