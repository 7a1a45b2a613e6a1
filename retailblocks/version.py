"""The core's versions: the distribution's, and the block contract's that blocks declare they target."""

__version__ = "0.1.0"

#: The version of the block contract (hook specifications and models) this core implements. Blocks
#: declare the version they target; the same major with a minor no newer than this one is compatible.
CORE_API_VERSION = "1.4"
