"""Assembly's plan: from a manifest and the installed blocks to configured, registered, routed blocks.

:func:`retailblocks.stack.assemble` turns a plan into a running stack. Nothing is written (no database,
no directory, no lock file) until the whole manifest, every block's configuration and the routing have been
checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import attrs
import pluggy
import sqlalchemy as sa
from packaging.version import InvalidVersion, Version

from retailblocks.assembly.core_block import CoreBlock
from retailblocks.assembly.discovery import TRACE_ENV, AssembledBlock, BlockInfo, api_incompatibility, discover
from retailblocks.assembly.hooks import Hooks
from retailblocks.assembly.references import check_manifest as check_references
from retailblocks.assembly.references import declared_names
from retailblocks.assembly.routing import plan_routing
from retailblocks.errors import AssemblyError, EnvironmentFailure, suggestion
from retailblocks.hookspecs import PROJECT, SPEC_MODULES
from retailblocks.hookspecs.blocks import Block
from retailblocks.manifest import (
    BlockEntry,
    ConfigTypeError,
    Manifest,
    ManifestError,
    SourcePosition,
    build_config,
    load_manifest,
)
from retailblocks.manifest.errors import ManifestProblems
from retailblocks.manifest.nodes import position_in
from retailblocks.storage import check_reachable, create_engine, describe_url, migrate
from retailblocks.storage.engine import sqlite_path
from retailblocks.version import CORE_API_VERSION

CORE_ID = "core"
#: The fusion timeline's listener (retailblocks.fusion.block), which the stack registers in every plan.
FUSION_ID = "fusion"
#: Marketplace payments and channels' published stock (retailblocks.connectors), also in every plan.
CONNECTORS_ID = "connectors"
#: Blocks the core registers in every stack; manifest entries may not take their ids.
CORE_BLOCK_IDS = (CORE_ID, FUSION_ID, CONNECTORS_ID)


@attrs.frozen
class Plan:
    """Everything assembly decided before touching storage: what ``blocks assemble --check`` validates."""

    manifest: Manifest
    blocks: tuple[AssembledBlock, ...]
    plugin_manager: pluggy.PluginManager = attrs.field(eq=False)
    hooks: Hooks = attrs.field(eq=False)


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    for module in SPEC_MODULES.values():
        pm.add_hookspecs(module)
    return pm


def plan(
    manifest_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
    core_blocks: Sequence[Block] = (),
) -> Plan:
    """Load the manifest and resolve, configure and register its blocks, writing nothing.

    ``core_blocks`` are the core's own blocks from the floors above assembly (the fusion timeline's
    listener), registered under their ids beside the manifest's.
    """
    env = dict(os.environ if environ is None else environ)
    manifest = load_manifest(manifest_path, environ=env)
    available = dict(installed if installed is not None else discover(env))

    assembled: list[AssembledBlock] = []
    # Each entry is resolved on its own, so the problems of several entries are all reported at once.
    entry_problems = ManifestProblems()
    for entry in manifest.blocks:
        block = entry_problems.attempt(partial(_resolve_entry, entry, available, env, CORE_API_VERSION))
        if block is not None:
            assembled.append(block)
    entry_problems.raise_any()

    pm = new_plugin_manager()
    pm.register(CoreBlock(None, block_id=CORE_ID), name=CORE_ID)
    for core_block in core_blocks:
        pm.register(core_block, name=core_block.id)
    for block in assembled:
        try:
            pm.register(block.instance, name=block.entry.id)
        except pluggy.PluginValidationError as error:
            raise AssemblyError(
                f"block {block.entry.use!r} (distribution {block.info.distribution} {block.info.version}): {error}",
                block=block.entry.use,
                distribution=block.info.distribution,
            ) from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:
        plugin_name = pm.get_name(error.plugin) or "?"
        owner = next((b for b in assembled if b.entry.id == plugin_name), None)
        distribution = owner.info.distribution if owner else "?"
        raise AssemblyError(
            f"block {plugin_name!r} (distribution {distribution}) implements a hook that no specification "
            f"declares: {error}. Check the spelling against `blocks plugins` or the hookspecs.",
            block=plugin_name,
            distribution=distribution,
        ) from None
    names = declared_names(manifest, pm.hook.stack_names())
    # The references and every block's own checks are independent: all their problems are reported at once.
    checks = ManifestProblems()
    checks.attempt(partial(check_references, manifest, names))
    by_instance = {id(block.instance): block for block in assembled}
    arguments = {"merchant": manifest.merchant, "channels": manifest.channels, "names": names}
    for impl in pm.hook.stack_check.get_hookimpls():
        checked = by_instance.get(id(impl.plugin))
        if checked is None:
            continue
        found: Sequence[str] | None = impl.function(*[arguments[name] for name in impl.argnames])  # type: ignore[assignment]
        for problem in found or ():
            checks.errors.append(_check_problem(checked.entry, problem))
    checks.raise_any()
    # The core's own payment methods answer unless the manifest routes one to a block of its own.
    core_methods = {method: block.id for block in core_blocks for method in block.payment_methods}
    routing = plan_routing(manifest, assembled, pm, core_payment_methods=core_methods)
    trace = env.get(TRACE_ENV, "") not in ("", "0")
    if trace:
        # Calls that go through pluggy itself (the lifecycle hooks assembly makes) are traced by pluggy; the face
        # traces the routed calls it makes directly.
        pm.trace.root.setwriter(lambda text: sys.stderr.write(f"[retailblocks trace] {text}"))
        pm.enable_tracing()
    answering = {**{block.id: block for block in core_blocks}, **{b.entry.id: b.instance for b in assembled}}
    hooks = Hooks(pm, answering, routing, trace=trace)
    return Plan(manifest, tuple(assembled), pm, hooks)


def _resolve_entry(
    entry: BlockEntry, available: Mapping[str, BlockInfo], env: Mapping[str, str], core_api: str
) -> AssembledBlock:
    """The manifest entry resolved to its installed block, configured; ManifestError if it cannot be."""
    if entry.id in CORE_BLOCK_IDS:
        raise ManifestError.at(
            entry.position_of("id"),
            f"block id {entry.id!r} is reserved for the core's own blocks ({', '.join(CORE_BLOCK_IDS)}); "
            "give this entry another `id`",
        )
    info = available.get(entry.use)
    if info is None:
        hint = suggestion(entry.use, available)
        installed_names = ", ".join(sorted(available)) or "none"
        raise ManifestError.at(
            entry.position_of("use"),
            f"unknown block {entry.use!r}{hint}; installed blocks: {installed_names}",
        )
    if info.block_class is None:
        raise ManifestError.at(entry.position_of("use"), info.error or f"block {entry.use!r} cannot be loaded")
    if entry.version is not None:
        try:
            installed_version = Version(info.version)
        except InvalidVersion:
            installed_version = None
        if installed_version is None or not entry.version.contains(installed_version, prereleases=True):
            raise ManifestError.at(
                entry.position_of("version"),
                f"block {entry.use!r} is installed at version {info.version} (distribution "
                f"{info.distribution}), which does not satisfy {str(entry.version)!r}",
            )
    incompatible = api_incompatibility(info.block_class.core_api, core_api)
    if incompatible:
        raise ManifestError.at(
            entry.position_of("use"),
            f"block {entry.use!r} (distribution {info.distribution} {info.version}) cannot be used: {incompatible}",
        )
    try:
        config = build_config(info.block_class.Config, entry.config, environ=env)
    except ConfigTypeError as error:
        raise AssemblyError(
            f"block {entry.use!r} (distribution {info.distribution} {info.version}) has a configuration "
            f"class the core cannot read: {error}",
            block=entry.use,
            distribution=info.distribution,
        ) from None
    try:
        instance = info.block_class(config, block_id=entry.id)
    except (ValueError, TypeError) as error:
        # A block that names the field at fault (``field: what is wrong``) is pointed at that field.
        field, _, sentence = str(error).partition(": ")
        where = _config_position(entry, field) if sentence else None
        raise ManifestError.at(
            where or entry.position_of("config"),
            f"block {entry.use!r} rejected its configuration: {sentence if where else error}",
        ) from None
    return AssembledBlock(entry, info, instance)


def _check_problem(entry: BlockEntry, problem: str) -> ManifestError:
    """A problem a block's stack_check found, pointed at the field it names when that can be found, else
    at the block's config."""
    field, _, sentence = problem.partition(": ")
    where = _config_position(entry, field, sentence) if sentence else None
    if where is None:
        return ManifestError.at(entry.position_of("config"), f"block {entry.use!r}: {problem}")
    return ManifestError.at(where, f"block {entry.use!r}: {sentence}")


def _config_position(entry: BlockEntry, field: str, quoting: str = "") -> SourcePosition | None:
    """Where the configuration field ``field`` (``channels.wbe``, ``rates[0].price``) was written, if it was."""
    return position_in(entry.config, field, quoting=quoting)


def prepare_storage(the_plan: Plan, engine: sa.Engine | None = None) -> sa.Engine:
    """Create the database if needed and migrate every owner's tables.

    With ``engine``, storage was decided by someone else (a platform places each merchant in a schema or a
    file of its own, retailblocks.platform): the manifest's ``database`` is ignored and that engine is
    migrated, and on failure left for its owner to dispose of.

    Storage that cannot be prepared (a file where the database's directory should be, a file that is not
    a database, a server that refuses) is a failure of the environment, reported in one sentence.
    """
    owned = engine is None
    url = the_plan.manifest.database_url if engine is None else engine.url.render_as_string(hide_password=False)
    where = describe_url(url)
    database_file = sqlite_path(url)
    try:
        if database_file is not None:
            database_file.parent.mkdir(parents=True, exist_ok=True)
        if engine is None:
            engine = create_engine(url)
    except OSError as error:
        raise EnvironmentFailure(
            f"{the_plan.manifest.path}: cannot prepare the stack's storage at {where}: {error.strerror or error}"
        ) from None
    try:
        check_reachable(engine)
        owners: dict[str, list[Any]] = {}
        for block_id in [*CORE_BLOCK_IDS, *[b.entry.id for b in the_plan.blocks]]:
            plugin = the_plan.plugin_manager.get_plugin(block_id)
            function = getattr(plugin, "stack_migrations", None)
            if function is not None:
                owner = plugin.name if isinstance(plugin, Block) else block_id
                owners.setdefault(owner, list(function()))
        migrate(engine, owners)
    except sa.exc.SQLAlchemyError as error:
        if owned:
            engine.dispose()
        original = getattr(error, "orig", None) or error
        reason = " ".join(str(original).split()) or type(error).__name__
        raise EnvironmentFailure(
            f"{the_plan.manifest.path}: cannot prepare the stack's storage in {where}: {reason}"
        ) from None
    except BaseException:
        if owned:
            engine.dispose()
        raise
    return engine
