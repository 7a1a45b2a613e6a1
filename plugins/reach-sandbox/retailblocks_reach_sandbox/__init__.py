"""reach-sandbox: a reach block that records the messages it is asked to send instead of sending them.

It behaves as a provider would where a campaign can tell: it needs an address the medium can reach,
honours opt-outs, answers a replayed request with its first delivery, and fails a configurable share of
messages (deterministically, by the request's key) so failure handling can be exercised.
"""

from __future__ import annotations

from retailblocks_reach_sandbox.block import ReachSandbox, ReachSandboxConfig

__all__ = ["ReachSandbox", "ReachSandboxConfig"]
