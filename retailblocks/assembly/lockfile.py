"""The lock file: what ``blocks assemble`` decided for a manifest, written beside it and checked by every
other command.

A manifest's lock is named after it (``corner.lock`` beside ``corner.yaml``, ``blocks.lock`` beside
``blocks.yaml``), so two manifests in one directory keep a lock each. Operator commands refuse a stack
whose manifest was never assembled, since running one would prepare storage nobody asked for, and warn
when the manifest no longer matches its lock, since a changed block or configuration would otherwise take
effect unannounced.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retailblocks.assembly.describe import describe_plan
from retailblocks.errors import AssemblyError

if TYPE_CHECKING:
    from retailblocks.assembly.plan import Plan

LOCK_SUFFIX = ".lock"


def lock_path(manifest_path: str | os.PathLike[str]) -> Path:
    """Where the lock of the manifest at ``manifest_path`` is: beside it, with its name and ``.lock``."""
    path = Path(manifest_path)
    if path.suffix == LOCK_SUFFIX:
        # A manifest that itself ends in .lock must never be overwritten by its own lock.
        return path.with_name(path.name + LOCK_SUFFIX)
    return path.with_name(path.stem + LOCK_SUFFIX)


def assemble_hint(manifest_path: str | os.PathLike[str]) -> str:
    return f"run `blocks assemble -m {os.fspath(manifest_path)}` first"


def check_assembled(the_plan: Plan, shown_path: str | os.PathLike[str] | None = None) -> list[str]:
    """What changed in the manifest since it was assembled (empty when it matches its lock).

    Raises AssemblyError (invalid input, exit 2) when the manifest was never assembled: there is no lock.
    ``shown_path`` is the manifest as the operator named it, for the messages.
    """
    shown = shown_path if shown_path is not None else the_plan.manifest.path
    target = lock_path(the_plan.manifest.path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AssemblyError(
            f"{os.fspath(shown)}: this stack was never assembled (no {target.name} beside the manifest); "
            f"{assemble_hint(shown)}"
        ) from None
    except OSError as error:
        return [f"its lock {target.name} cannot be read ({error.strerror or error})"]
    try:
        locked = json.loads(text)
    except ValueError:
        return [f"its lock {target.name} is not a lock file"]
    if not isinstance(locked, dict):
        return [f"its lock {target.name} is not a lock file"]
    return lock_changes(locked, describe_plan(the_plan))


def lock_changes(locked: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between the lock ``locked`` and the stack ``current`` (both as describe_plan gives
    them): the blocks, their versions and configuration fingerprints, the core's version and the marketing
    stacking policy."""
    changes: list[str] = []
    locked_core = _mapping(locked.get("core")).get("version")
    current_core = _mapping(current.get("core")).get("version")
    if locked_core != current_core:
        changes.append(f"core {locked_core} is now {current_core}")
    before = _blocks(locked)
    after = _blocks(current)
    for block_id, block in after.items():
        old = before.get(block_id)
        if old is None:
            changes.append(f"block {block_id!r} ({block.get('use')}) added")
            continue
        if old.get("use") != block.get("use"):
            changes.append(f"block {block_id!r} now uses {block.get('use')} (was {old.get('use')})")
            continue
        if (old.get("distribution"), old.get("version")) != (block.get("distribution"), block.get("version")):
            changes.append(
                f"block {block_id!r} {old.get('distribution')} {old.get('version')} is now "
                f"{block.get('distribution')} {block.get('version')}"
            )
        if old.get("config_fingerprint") != block.get("config_fingerprint"):
            changes.append(f"block {block_id!r} configuration changed")
    changes.extend(f"block {block_id!r} removed" for block_id in before if block_id not in after)
    locked_policy = _mapping(locked.get("routing")).get("marketing")
    current_policy = _mapping(current.get("routing")).get("marketing")
    # A lock written before the policy was recorded has none: not a change of the manifest.
    if locked_policy is not None and locked_policy != current_policy:
        changes.append("the marketing stacking policy changed")
    return changes


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _blocks(described: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    blocks = described.get("blocks")
    if not isinstance(blocks, list):
        return {}
    return {str(block.get("id")): block for block in blocks if isinstance(block, Mapping)}


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_lock(plan: Plan) -> Path:
    """Write the manifest's lock (see lockfile.lock_path) beside it, atomically (a crash never leaves half a
    file).

    The lock file is meant to be committed beside the manifest, so it gets the permissions of any
    file the user creates (0644 under the usual umask), not the private 0600 of a temporary file.
    """
    target = lock_path(plan.manifest.path)
    data = describe_plan(plan)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
