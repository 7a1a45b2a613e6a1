"""Events: facts recorded in the outbox in the same transaction as the change, delivered at least once."""

from retailblocks.events.dispatcher import DispatchReport, dispatch, read_events

__all__ = ["DispatchReport", "dispatch", "read_events"]
