"""The two compatibility axes of a block, kept in agreement: the core API it targets and its pip requirement.

A block declares ``core_api = "X.Y"``: it runs on core API X.Y and every later minor of major X
(:func:`retailblocks.assembly.discovery.api_incompatibility`). pip knows nothing of that; it reads the block's
``Requires-Dist: retailblocks …``. :data:`retailblocks.version.CORE_API_RELEASES` says which release of the
distribution first provided each core API version, and the project makes a new distribution major for each
new core API major, so the requirement a block needs follows from its ``core_api``::

    core_api "1.1"  ->  retailblocks>=0.1.0,<1

``blocks new`` writes that requirement; ``blocks assemble`` and ``blocks plugins`` warn about an installed
block whose requirement admits a release its ``core_api`` cannot run on, or excludes the running core although
its ``core_api`` is compatible (docs/publishing.md).
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from retailblocks.assembly.discovery import api_incompatibility
from retailblocks.errors import InvalidInput
from retailblocks.version import CORE_API_RELEASES, CORE_API_VERSION, __version__

CORE_DISTRIBUTION = "retailblocks"
_API = re.compile(r"^(\d+)\.(\d+)$")


def _api_key(api: str) -> tuple[int, int]:
    major, minor = api.split(".")
    return int(major), int(minor)


def core_api_releases() -> dict[str, Version]:
    """Each known core API version and the first distribution release that provides it, oldest first; the
    running core's API counts as provided by the running release if the table does not list it yet."""
    table = {api: Version(release) for api, release in CORE_API_RELEASES.items()}
    table.setdefault(CORE_API_VERSION, Version(__version__))
    return dict(sorted(table.items(), key=lambda item: _api_key(item[0])))


def api_provided_by(release: Version) -> str | None:
    """The newest core API that ``release`` of the distribution provides, or None for one older than all."""
    provided = [api for api, first in core_api_releases().items() if first <= release]
    return max(provided, key=_api_key) if provided else None


def core_api_range(block_api: str) -> str:
    """The range of core API versions a block targeting ``block_api`` runs on, as a version specifier."""
    major, minor = _api_key(check_api(block_api))
    return f">={major}.{minor},<{major + 1}"


def check_api(api: str) -> str:
    if not _API.match(api):
        raise InvalidInput(f"core API version {api!r} is not 'major.minor' such as {CORE_API_VERSION!r}")
    return api


def api_range_admits(api_range: str, api: str) -> bool:
    """Whether the core API range (a version specifier such as ``>=1.1,<2``) admits core API ``api``."""
    return SpecifierSet(api_range).contains(Version(api), prereleases=True)


def core_requirement(block_api: str) -> str:
    """The requirement on ``retailblocks`` that lets pip install exactly the releases whose core API runs a
    block targeting ``block_api``: from the first release providing it, below the next distribution major."""
    major, minor = _api_key(check_api(block_api))
    releases = core_api_releases()
    providing = [
        release for api, release in releases.items() if _api_key(api)[0] == major and _api_key(api)[1] >= minor
    ]
    if not providing:
        raise InvalidInput(
            f"no known release of retailblocks provides core API {block_api} "
            f"(this retailblocks {__version__} provides core API {CORE_API_VERSION})"
        )
    lowest = min(providing)
    next_major = releases.get(f"{major + 1}.0")
    upper = next_major if next_major is not None else Version(str(max(providing).major + 1))
    return f"{CORE_DISTRIBUTION}>={lowest},<{upper}"


def core_requirement_of(distribution: str) -> SpecifierSet | None:
    """The specifier of the installed ``distribution``'s requirement on retailblocks, or None if it has none
    (or is not installed)."""
    try:
        requires = metadata.distribution(distribution).requires or []
    except metadata.PackageNotFoundError:
        return None
    for text in requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != CORE_DISTRIBUTION:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        return requirement.specifier
    return None


def metadata_disagreements(block: str, block_api: str, specifier: SpecifierSet | None) -> list[str]:
    """Where pip (reading ``specifier``, the block's requirement on retailblocks) and ``blocks assemble``
    (reading ``block_api``) would disagree about which core the block runs on; empty when they agree."""
    try:
        expected = core_requirement(block_api)
    except InvalidInput:
        # A block for a core API newer than any release known here: assembly refuses it with its own message.
        return []
    if specifier is None:
        return [
            f"block {block!r} declares no requirement on retailblocks, so pip may install it beside a core whose "
            f"API it cannot run on (it targets core API {block_api}); require {expected}"
        ]
    problems: list[str] = []
    releases = sorted({*core_api_releases().values(), Version(__version__)})
    for release in releases:
        provided = api_provided_by(release)
        if provided is None or not specifier.contains(release, prereleases=True):
            continue
        if api_incompatibility(block_api, provided) is not None:
            problems.append(
                f"block {block!r} requires retailblocks{specifier}, which admits retailblocks {release} with core "
                f"API {provided}, but it targets core API {block_api}: pip would install it where blocks assemble "
                f"refuses it; require {expected}"
            )
    upper = Version(expected.rpartition("<")[2])
    if specifier.contains(upper, prereleases=True):
        problems.append(
            f"block {block!r} requires retailblocks{specifier}, which admits retailblocks {upper} and its new core "
            f"API major; require {expected}"
        )
    running = Version(__version__)
    if not specifier.contains(running, prereleases=True) and api_incompatibility(block_api, CORE_API_VERSION) is None:
        problems.append(
            f"block {block!r} requires retailblocks{specifier}, which excludes this retailblocks {__version__}, "
            f"though its core API {block_api} runs on core API {CORE_API_VERSION}: pip will report a conflict; "
            f"require {expected}"
        )
    return problems


def installed_disagreements(block: str, distribution: str, block_api: str) -> list[str]:
    """:func:`metadata_disagreements` for an installed block, reading its distribution's metadata."""
    return metadata_disagreements(block, block_api, core_requirement_of(distribution))


def parse_specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None
