"""Installing a block's distribution into the environment that runs ``blocks``.

The interpreter running this code is the environment: ``uv pip install --python sys.executable`` when uv is on
PATH (fast, and it works in the virtual environments uv makes, which have no pip), else ``python -m pip``.
The running core is pinned in the same request, so installing a block never moves the core under the manifest
that is about to use it; a block that needs another core fails to resolve instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence

import attrs

from retailblocks.errors import EnvironmentFailure
from retailblocks.publishing.compat import CORE_DISTRIBUTION
from retailblocks.version import __version__

#: Installing can download and build; an hour is beyond any install and still ends a hung one.
INSTALL_TIMEOUT = 3600.0


@attrs.frozen
class PackageSources:
    """Where the installer looks: pip's and uv's own options of the same names."""

    index_url: str | None = None
    find_links: tuple[str, ...] = ()
    no_index: bool = False

    def arguments(self) -> list[str]:
        arguments: list[str] = []
        if self.index_url:
            arguments += ["--index-url", self.index_url]
        for location in self.find_links:
            arguments += ["--find-links", location]
        if self.no_index:
            arguments.append("--no-index")
        return arguments


def installer_command(
    requirements: Sequence[str],
    sources: PackageSources,
    *,
    python: str | None = None,
    uv: str | None = None,
) -> list[str]:
    """The command that installs ``requirements`` (with the running core pinned) into ``python``'s environment.

    ``uv`` is found on PATH unless given; an empty string forces pip.
    """
    interpreter = python or sys.executable
    found_uv = shutil.which("uv") if uv is None else (uv or None)
    pinned = [*requirements, f"{CORE_DISTRIBUTION}=={__version__}"]
    if found_uv:
        return [found_uv, "pip", "install", "--python", interpreter, *sources.arguments(), *pinned]
    return [interpreter, "-m", "pip", "install", "--disable-pip-version-check", *sources.arguments(), *pinned]


def install(requirements: Sequence[str], sources: PackageSources) -> list[str]:
    """Install ``requirements`` into this environment; the command run is returned, a failure raised with the
    installer's own last words."""
    command = installer_command(requirements, sources)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except FileNotFoundError:
        raise EnvironmentFailure(f"cannot run the installer {command[0]!r}") from None
    except subprocess.TimeoutExpired:
        wanted = ", ".join(requirements)
        raise EnvironmentFailure(f"installing {wanted} took longer than {INSTALL_TIMEOUT:.0f}s") from None
    if completed.returncode != 0:
        said = [line.strip() for line in (completed.stderr + completed.stdout).splitlines() if line.strip()]
        tail = " / ".join(said[-6:]) or f"exit status {completed.returncode}"
        raise EnvironmentFailure(f"installing {', '.join(requirements)} failed ({command[0]} {command[1]}): {tail}")
    return command
