"""Publishing blocks: the catalogue of blocks to add, adding and removing them in a manifest, writing a new
block's project, and keeping a block's pip requirement on retailblocks in step with its core API.

The commands (``blocks catalogue``, ``blocks add``, ``blocks remove``, ``blocks new``) are thin wrappers
around this package; docs/publishing.md explains the design.
"""
