"""Simulated retail days: reproducible request mixes run against a real stack, checked by invariants."""

from retailblocks.simulation.day import DayResult, RetailDay, summarize
from retailblocks.simulation.invariants import Invariant
from retailblocks.simulation.profile import Profile, load_profile

__all__ = ["DayResult", "Invariant", "Profile", "RetailDay", "load_profile", "summarize"]
