"""The kit for block authors: a harness that runs a block against a real database, and pytest fixtures."""

from retailblocks.testing.databases import fresh_database, postgres_server_url
from retailblocks.testing.harness import DEFAULT_CHANNELS, BlockHarness

__all__ = ["DEFAULT_CHANNELS", "BlockHarness", "fresh_database", "postgres_server_url"]
