"""Simulated retail days: reproducible request mixes run against a real stack, checked by invariants.

The names load on first use: the day's client processes (``blocks demo --http``) import only
:mod:`retailblocks.simulation.wire`, not the stack behind the day.
"""

from typing import TYPE_CHECKING

from retailblocks.lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers see of the names loaded on first use
    from retailblocks.simulation.day import DayResult, RetailDay, summarize
    from retailblocks.simulation.invariants import Invariant
    from retailblocks.simulation.profile import Profile, load_profile

__all__ = ["DayResult", "Invariant", "Profile", "RetailDay", "load_profile", "summarize"]

__getattr__ = lazy_exports(
    __name__,
    {
        "DayResult": "retailblocks.simulation.day",
        "RetailDay": "retailblocks.simulation.day",
        "summarize": "retailblocks.simulation.day",
        "Invariant": "retailblocks.simulation.invariants",
        "Profile": "retailblocks.simulation.profile",
        "load_profile": "retailblocks.simulation.profile",
    },
)
