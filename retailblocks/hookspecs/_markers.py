"""The pluggy markers of the ``retailblocks`` project."""

import pluggy

PROJECT = "retailblocks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
