"""``blocks add`` and ``blocks remove`` as Python: one function each, which the commands only call.

Adding goes catalogue entry → core API range checked (refused before anything is installed) → the manifest
read and the instance id checked free → the distribution installed → the block found among the installed ones
→ its default configuration rendered (secrets and other required fields as ``${VAR}`` placeholders) → the
entry spliced into the manifest, other lines untouched → the manifest checked as ``blocks assemble --check``
does. Removing takes the entry's lines out and checks again.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from retailblocks.assembly.discovery import BlockInfo, api_incompatibility, discover
from retailblocks.errors import InvalidInput, RetailBlocksError
from retailblocks.hookspecs.blocks import Block, is_secret
from retailblocks.manifest import ManifestError
from retailblocks.publishing.catalogue import Catalogue, CatalogueEntry
from retailblocks.publishing.compat import installed_disagreements
from retailblocks.publishing.install import PackageSources, install
from retailblocks.publishing.manifest_edit import ManifestText, NewEntry
from retailblocks.version import CORE_API_VERSION, __version__

_NOT_SET = re.compile(r"environment variable '([A-Za-z_][A-Za-z0-9_]*)' is not set")
_INSTANCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@attrs.frozen
class Variable:
    name: str
    field: str
    secret: bool
    help: str


@attrs.frozen
class Check:
    """The manifest check after an edit: ``ok``, or the variables still to set, or the problems found."""

    ok: bool
    missing_variables: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    def to_data(self) -> dict[str, Any]:
        return {"ok": self.ok, "missing_variables": list(self.missing_variables), "problems": list(self.problems)}


@attrs.frozen
class Added:
    block: str
    instance: str
    distribution: str
    version: str
    manifest: Path
    lines: tuple[str, ...]
    first_line: int
    variables: tuple[Variable, ...]
    installer: tuple[str, ...]
    check: Check
    warnings: tuple[str, ...]

    def to_data(self) -> dict[str, Any]:
        return {
            "block": self.block,
            "id": self.instance,
            "distribution": self.distribution,
            "version": self.version,
            "manifest": str(self.manifest),
            "added_lines": list(self.lines),
            "first_line": self.first_line,
            "variables": [attrs.asdict(v) for v in self.variables],
            "installer": list(self.installer),
            "check": self.check.to_data(),
            "warnings": list(self.warnings),
        }


@attrs.frozen
class Removed:
    instance: str
    block: str
    manifest: Path
    lines: tuple[str, ...]
    check: Check

    def to_data(self) -> dict[str, Any]:
        return {
            "id": self.instance,
            "block": self.block,
            "manifest": str(self.manifest),
            "removed_lines": list(self.lines),
            "check": self.check.to_data(),
        }


def incompatibility(entry: CatalogueEntry) -> str | None:
    """Why the catalogue's block cannot run on this core, naming both ranges, or None."""
    if entry.compatible:
        return None
    return (
        f"block {entry.name!r} ({entry.distribution}, from {entry.source}) runs on core API {entry.core_api}, "
        f"but this retailblocks {__version__} provides core API {CORE_API_VERSION}; nothing was installed"
    )


def add_block(
    catalogue: Catalogue,
    name: str,
    manifest_path: Path,
    *,
    sources: PackageSources = PackageSources(),
    instance: str | None = None,
    install_package: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Added:
    """Install the catalogue's block ``name`` and add it to the manifest (see the module's documentation)."""
    entry = catalogue.get(name)
    refused = incompatibility(entry)
    if refused:
        raise InvalidInput(refused)
    if instance is not None and not _INSTANCE_ID.match(instance):
        raise InvalidInput(f"--id {instance!r} is not an instance id (lower-case letters, digits, '-' and '_')")
    manifest = ManifestText(manifest_path)
    instance_id = instance or entry.name
    taken = manifest.find(instance_id)
    if taken is not None:
        raise InvalidInput(
            f"{manifest_path}:{taken.line}: blocks[{taken.index}] is already {instance_id!r} (block {taken.use!r}); "
            "give the new one another --id, or `blocks remove` the old one first"
        )
    command: list[str] = []
    if install_package:
        command = install([entry.requirement()], sources)
        # The distribution was installed by another process: let this one's import system see it.
        importlib.invalidate_caches()
    info = _installed_block(entry)
    block_class = info.block_class
    assert block_class is not None
    config, comments, variables = default_config(block_class, instance_id)
    new_entry = NewEntry(entry.name, instance, config, comments)
    text = manifest.with_entry(new_entry)
    before = manifest.text.splitlines()
    after = text.splitlines()
    first = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), len(before))
    added_lines = tuple(after[first : first + len(after) - len(before)])
    manifest.write(text)
    check = check_manifest(manifest_path, environ, expected_variables={v.name for v in variables})
    return Added(
        block=entry.name,
        instance=instance_id,
        distribution=info.distribution,
        version=info.version,
        manifest=manifest_path,
        lines=added_lines,
        first_line=first + 1,
        variables=tuple(variables),
        installer=tuple(command),
        check=check,
        warnings=tuple(installed_disagreements(info.name, info.distribution, block_class.core_api)),
    )


def remove_block(name: str, manifest_path: Path, *, environ: Mapping[str, str] | None = None) -> Removed:
    """Take the entry whose instance id is ``name`` out of the manifest, and check what is left."""
    manifest = ManifestText(manifest_path)
    found = manifest.find(name)
    if found is None:
        using = manifest.uses(name)
        if using:
            ids = ", ".join(repr(e.id) for e in using)
            raise InvalidInput(f"{manifest_path}: block {name!r} is used under the id(s) {ids}; remove one of those")
        present = ", ".join(repr(e.id) for e in manifest.entries()) or "none"
        raise InvalidInput(f"{manifest_path}: no entry {name!r} in blocks: (entries: {present})")
    text = manifest.without_entry(found)
    before = manifest.text.splitlines()
    after = text.splitlines()
    first = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), len(after))
    removed = tuple(before[first : first + len(before) - len(after)])
    manifest.write(text)
    return Removed(found.id, found.use, manifest_path, removed, check_manifest(manifest_path, environ))


def _installed_block(entry: CatalogueEntry) -> BlockInfo:
    installed = discover({})
    info = installed.get(entry.name)
    if info is None:
        raise InvalidInput(
            f"{entry.distribution} is installed but provides no block named {entry.name!r} "
            f"(the catalogue {entry.source} says it does); blocks found: {', '.join(installed) or 'none'}"
        )
    if info.block_class is None:
        raise InvalidInput(f"block {entry.name!r} is installed but cannot be used: {info.error}")
    problem = api_incompatibility(info.block_class.core_api, CORE_API_VERSION)
    if problem:
        raise InvalidInput(
            f"block {entry.name!r} ({info.distribution} {info.version}) was installed, but {problem}; "
            "it was not added to the manifest"
        )
    return info


def placeholder(instance: str, field: str) -> str:
    """The environment variable a generated ``${…}`` placeholder names: ``sandbox-card``'s ``secret_key`` is
    ``SANDBOX_CARD_SECRET_KEY``."""
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{instance}_{field}").strip("_").upper()


def default_config(block_class: type[Block], instance: str) -> tuple[dict[str, str], dict[str, str], list[Variable]]:
    """A block's default configuration for a new manifest entry: nothing for fields with defaults (the block's
    own defaults apply), a ``${VAR}`` placeholder for each required field, secrets first among them."""
    config_class = block_class.Config
    if not attrs.has(config_class):
        return {}, {}, []
    config: dict[str, str] = {}
    comments: dict[str, str] = {}
    variables: list[Variable] = []
    fields = [f for f in attrs.fields(config_class) if f.init and f.default is attrs.NOTHING]
    for field in sorted(fields, key=lambda f: not is_secret(f)):
        name = field.alias or field.name
        variable = placeholder(instance, name)
        config[name] = f"${{{variable}}}"
        help_text = str(field.metadata.get("help", "")).strip()
        comments[name] = ("secret: " if is_secret(field) else "required: ") + (help_text or "set it in the environment")
        variables.append(Variable(variable, name, is_secret(field), help_text))
    return config, comments, variables


def check_manifest(
    manifest_path: Path, environ: Mapping[str, str] | None = None, *, expected_variables: set[str] | None = None
) -> Check:
    """What ``blocks assemble --check`` says of the manifest: ok, only the new placeholders' variables unset,
    or its problems."""
    from retailblocks.stack import plan

    try:
        plan(manifest_path, environ=environ)
    except ManifestError as error:
        problems = tuple(str(p) for p in error.problems)
        return _classify(problems, expected_variables or set())
    except RetailBlocksError as error:
        return Check(False, problems=(str(error),))
    return Check(True)


def _classify(problems: Sequence[str], expected: set[str]) -> Check:
    missing = [match.group(1) for p in problems if (match := _NOT_SET.search(p))]
    if missing and len(missing) == len(problems) and set(missing) <= expected:
        return Check(False, missing_variables=tuple(dict.fromkeys(missing)))
    return Check(False, problems=tuple(problems))
