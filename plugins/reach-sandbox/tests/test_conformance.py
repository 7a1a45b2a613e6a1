"""The reach sandbox passes the reach and lifecycle contracts of the block kit, on both databases."""

from __future__ import annotations

from retailblocks_reach_sandbox import ReachSandbox

from retailblocks.testing.contracts.lifecycle import LifecycleContract
from retailblocks.testing.contracts.reach import ReachContract


class TestReachSandboxConformance(ReachContract, LifecycleContract):
    block_class = ReachSandbox
    config = {"api_key": "${REACH_SANDBOX_KEY}", "mediums": ["sms", "email", "mini_program"]}
    environ = {"REACH_SANDBOX_KEY": "reach-sandbox-kit-key-0123456789"}


class TestAFailingProviderStillKeepsTheContract(ReachContract):
    block_class = ReachSandbox
    config = {"api_key": "${REACH_SANDBOX_KEY}", "failure_percent": 100}
    environ = {"REACH_SANDBOX_KEY": "reach-sandbox-kit-key-0123456789"}
