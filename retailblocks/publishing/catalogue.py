"""The catalogue of blocks one can add to a stack: an index shipped with the core, extended by the user's own.

A catalogue is a JSON document::

    {"catalogue": 1,
     "blocks": [{"name": "sandbox-card", "distribution": "retailblocks-sandbox-card",
                 "capabilities": ["payment"], "core_api": ">=1.1,<2",
                 "summary": "…", "homepage": "https://…" or null,
                 "conformance": ["0.1.0"], "version": ">=0.1,<1" (optional)}]}

``core_api`` is the range of core API versions the block runs on; ``conformance`` the releases of retailblocks
whose kit (``retailblocks.testing.contracts``) the block passed. Sources are read in order — the shipped
index, then each of ``$RETAILBLOCKS_CATALOGUE`` (separated by the path separator), then each ``--catalogue``
— and a later source's entry replaces an earlier one of the same name, so a company's catalogue can point a
block at its own build. Every problem names the source and the entry.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from retailblocks.errors import EnvironmentFailure, InvalidInput
from retailblocks.hookspecs import Capability
from retailblocks.publishing.compat import api_range_admits
from retailblocks.version import CORE_API_VERSION, __version__

#: Extra catalogues (files or URLs) read after the shipped one, separated like PATH.
CATALOGUE_ENV = "RETAILBLOCKS_CATALOGUE"
SHIPPED = "retailblocks (shipped)"
FORMAT = 1
#: A catalogue is an index, not a package: anything larger is refused rather than read into memory.
MAX_BYTES = 4 * 1024 * 1024
FETCH_TIMEOUT = 20.0

_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DISTRIBUTION = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_URL = re.compile(r"^https?://\S+$")
_FIELDS = {"name", "distribution", "capabilities", "core_api", "summary", "homepage", "conformance", "version"}
_REQUIRED = ("name", "distribution", "capabilities", "core_api", "summary")


class CatalogueError(InvalidInput):
    """A catalogue that cannot be read as one: the message names the source and the entry."""


@attrs.frozen
class CatalogueEntry:
    name: str
    distribution: str
    capabilities: tuple[str, ...]
    core_api: str
    summary: str
    homepage: str | None
    conformance: tuple[str, ...]
    version: str | None
    source: str

    @property
    def compatible(self) -> bool:
        """Whether this core's API is in the block's core API range."""
        return api_range_admits(self.core_api, CORE_API_VERSION)

    @property
    def passes_kit_here(self) -> bool:
        """Whether the block passed the kit of this very release of retailblocks."""
        return __version__ in self.conformance

    def requirement(self) -> str:
        """What to ask the installer for: the distribution, within its version range if the entry gives one."""
        return f"{self.distribution}{self.version or ''}"

    def to_data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "capabilities": list(self.capabilities),
            "core_api": self.core_api,
            "summary": self.summary,
            "homepage": self.homepage,
            "conformance": list(self.conformance),
            "version": self.version,
            "source": self.source,
            "compatible": self.compatible,
        }


@attrs.frozen
class Catalogue:
    entries: Mapping[str, CatalogueEntry]
    sources: tuple[str, ...]

    def get(self, name: str) -> CatalogueEntry:
        """The entry named ``name``; an unknown name is refused with the closest names and the sources read."""
        found = self.entries.get(name)
        if found is not None:
            return found
        import difflib

        close = difflib.get_close_matches(name, list(self.entries), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise InvalidInput(
            f"no block named {name!r} in the catalogue ({', '.join(self.sources)}){hint} "
            "(`blocks catalogue` lists them; --catalogue FILE_OR_URL adds a catalogue)"
        )

    def search(self, term: str) -> list[CatalogueEntry]:
        """Entries whose name, distribution, summary or capabilities contain ``term`` (case-insensitively)."""
        needle = term.casefold().strip()
        return [
            entry
            for entry in self.entries.values()
            if any(
                needle in text.casefold()
                for text in (entry.name, entry.distribution, entry.summary, *entry.capabilities)
            )
        ]


def catalogue_sources(extra: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> list[str]:
    """The user's catalogues in reading order: ``$RETAILBLOCKS_CATALOGUE``'s, then ``extra``."""
    env = os.environ if environ is None else environ
    from_env = [part for part in env.get(CATALOGUE_ENV, "").split(os.pathsep) if part.strip()]
    return [*from_env, *extra]


def load_catalogue(extra: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Catalogue:
    """The shipped catalogue extended by the user's (see the module's documentation)."""
    shipped = resources.files("retailblocks.publishing").joinpath("catalogue.json").read_text(encoding="utf-8")
    entries: dict[str, CatalogueEntry] = {}
    sources = [SHIPPED]
    for entry in parse_catalogue(shipped, SHIPPED):
        entries[entry.name] = entry
    for source in catalogue_sources(extra, environ):
        for entry in parse_catalogue(read_source(source), source):
            entries[entry.name] = entry
        sources.append(source)
    return Catalogue(dict(sorted(entries.items())), tuple(sources))


def read_source(source: str) -> str:
    """The text of a catalogue file or ``http(s)://``/``file://`` URL."""
    if "://" in source:
        if not (source.startswith(("https://", "http://", "file://"))):
            raise CatalogueError(f"catalogue {source}: only http://, https:// and file:// URLs are read")
        try:
            with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT) as response:
                data: bytes = response.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise EnvironmentFailure(f"catalogue {source}: the server answered {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise EnvironmentFailure(f"catalogue {source}: cannot fetch it: {reason}") from None
    else:
        path = Path(source)
        try:
            with path.open("rb") as file:
                data = file.read(MAX_BYTES + 1)
        except FileNotFoundError:
            raise CatalogueError(f"catalogue {source}: no such file") from None
        except IsADirectoryError:
            raise CatalogueError(f"catalogue {source}: is a directory, not a catalogue file") from None
        except OSError as error:
            raise EnvironmentFailure(f"catalogue {source}: cannot read it: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise CatalogueError(f"catalogue {source}: larger than {MAX_BYTES // (1024 * 1024)} MiB; not a catalogue")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CatalogueError(f"catalogue {source}: not UTF-8 text (byte {error.start})") from None


def parse_catalogue(text: str, source: str) -> list[CatalogueEntry]:
    """The entries of one catalogue document; the first problem found is raised, naming source and entry."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogueError(f"catalogue {source}:{error.lineno}:{error.colno}: not JSON: {error.msg}") from None
    if not isinstance(document, dict):
        raise CatalogueError(f'catalogue {source}: expected an object {{"catalogue": {FORMAT}, "blocks": [...]}}')
    if document.get("catalogue") != FORMAT:
        raise CatalogueError(
            f"catalogue {source}: 'catalogue' must be {FORMAT}, the format this retailblocks reads "
            f"(got {document.get('catalogue')!r})"
        )
    unknown = sorted(set(document) - {"catalogue", "blocks"})
    if unknown:
        raise CatalogueError(f"catalogue {source}: unknown key {unknown[0]!r} (known: catalogue, blocks)")
    blocks = document.get("blocks")
    if not isinstance(blocks, list):
        raise CatalogueError(f"catalogue {source}: 'blocks' must be a list of entries")
    entries: list[CatalogueEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(blocks):
        entry = _entry(raw, source, index)
        if entry.name in seen:
            raise CatalogueError(f"catalogue {source}: blocks[{index}] ({entry.name}): the name appears twice")
        seen.add(entry.name)
        entries.append(entry)
    return entries


def _entry(raw: object, source: str, index: int) -> CatalogueEntry:
    where = f"catalogue {source}: blocks[{index}]"
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: expected an object with {', '.join(_REQUIRED)}")
    name = raw.get("name")
    if isinstance(name, str) and name:
        where = f"{where} ({name})"
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise CatalogueError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})")
    missing = [field for field in _REQUIRED if field not in raw]
    if missing:
        raise CatalogueError(f"{where}: missing {', '.join(repr(m) for m in missing)}")

    def text(field: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        value = raw[field]
        if not isinstance(value, str) or not value.strip() or (pattern is not None and not pattern.match(value)):
            raise CatalogueError(f"{where}: {field} {value!r} is not {hint or 'a non-empty string'}")
        return value

    name = text("name", _BLOCK_NAME, "a block name (lower-case letters, digits and '-')")
    distribution = text("distribution", _DISTRIBUTION, "a distribution name")
    summary = text("summary")
    capabilities = raw["capabilities"]
    known = set(Capability)
    if (
        not isinstance(capabilities, list)
        or not capabilities
        or not all(isinstance(c, str) and c in known for c in capabilities)
    ):
        raise CatalogueError(
            f"{where}: capabilities {capabilities!r} is not a non-empty list of {', '.join(sorted(known))}"
        )
    core_api = text("core_api", hint="a core API range such as '>=1.1,<2'")
    if not _valid_range(core_api):
        raise CatalogueError(f"{where}: core_api {core_api!r} is not a core API range such as '>=1.1,<2'")
    homepage = raw.get("homepage")
    if homepage is not None and not (isinstance(homepage, str) and _URL.match(homepage)):
        raise CatalogueError(f"{where}: homepage {homepage!r} is not an http(s) URL or null")
    conformance = raw.get("conformance", [])
    if not isinstance(conformance, list) or not all(isinstance(v, str) and _valid_version(v) for v in conformance):
        raise CatalogueError(
            f"{where}: conformance {conformance!r} is not a list of retailblocks versions such as ['0.1.0']"
        )
    version = raw.get("version")
    if version is not None and not (isinstance(version, str) and version.strip() and _valid_specifier(version)):
        raise CatalogueError(f"{where}: version {version!r} is not a version range such as '>=0.1,<1'")
    return CatalogueEntry(
        name=name,
        distribution=distribution,
        capabilities=tuple(capabilities),
        core_api=core_api,
        summary=summary,
        homepage=homepage,
        conformance=tuple(conformance),
        version=version,
        source=source,
    )


def _valid_range(text: str) -> bool:
    if not _valid_specifier(text):
        return False
    # Every bound is a core API version: major or major.minor.
    return all(re.fullmatch(r"\d+(\.\d+)?(\.\*)?", spec.version) for spec in SpecifierSet(text))


def _valid_specifier(text: str) -> bool:
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return False
    return True


def _valid_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True
