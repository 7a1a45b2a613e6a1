"""The core's versions: the distribution's, and the block contract's that blocks declare they target."""

__version__ = "0.1.0"

#: The version of the block contract (hook specifications and models) this core implements. Blocks
#: declare the version they target; the same major with a minor no newer than this one is compatible.
CORE_API_VERSION = "1.8"

#: The first release of the ``retailblocks`` distribution that provides each core API version. A new major
#: of the core API comes only with a new major of the distribution, so the pip requirement a block needs on
#: ``retailblocks`` follows from the core API it targets (``retailblocks.publishing.compat``, docs/publishing.md).
#: When CORE_API_VERSION changes in a release, add its row; an unlisted current version counts as provided
#: by ``__version__``.
CORE_API_RELEASES: dict[str, str] = {
    "1.0": "0.1.0",
    "1.1": "0.1.0",
    "1.2": "0.1.0",
    "1.3": "0.1.0",
    "1.4": "0.1.0",
    "1.5": "0.1.0",
    "1.6": "0.1.0",
    "1.7": "0.1.0",
    "1.8": "0.1.0",
}
