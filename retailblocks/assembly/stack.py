"""Assembly: from a manifest and the installed blocks to a running :class:`Stack`.

Nothing is written (no database, no directory, no lock file) until the whole manifest, every block's
configuration and the routing have been checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import pluggy
import sqlalchemy as sa
from packaging.version import InvalidVersion, Version

from retailblocks.assembly.core_block import CoreBlock
from retailblocks.assembly.discovery import TRACE_ENV, BlockInfo, api_incompatibility, discover
from retailblocks.assembly.hooks import HookRelay
from retailblocks.assembly.references import check_manifest as check_references
from retailblocks.assembly.references import declared_names
from retailblocks.assembly.routing import plan_routing
from retailblocks.clock import FLOW_LEASE, Clock, IdFactory, RandomIds, SystemClock
from retailblocks.context import FlowContext
from retailblocks.errors import AssemblyError, EnvironmentFailure, UnknownChannel
from retailblocks.fusion.block import FUSION_ID, FusionBlock
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
from retailblocks.manifest.readers import suggestion
from retailblocks.model import Channel, Merchant, Product
from retailblocks.storage import UnitOfWork, check_reachable, create_engine, describe_url, migrate
from retailblocks.storage.engine import sqlite_path
from retailblocks.storage.unit_of_work import IdleConnection
from retailblocks.version import CORE_API_VERSION

if TYPE_CHECKING:
    from retailblocks.flows.api import OrderFlows

CORE_ID = "core"
#: Blocks the core registers in every stack; manifest entries may not take their ids.
CORE_BLOCK_IDS = (CORE_ID, FUSION_ID)


@attrs.frozen
class AssembledBlock:
    """A manifest entry resolved to an installed block and its validated configuration."""

    entry: BlockEntry
    info: BlockInfo
    instance: Block


@attrs.frozen
class Plan:
    """Everything assembly decided before touching storage: what ``blocks assemble --check`` validates."""

    manifest: Manifest
    blocks: tuple[AssembledBlock, ...]
    plugin_manager: pluggy.PluginManager = attrs.field(eq=False)
    relay: HookRelay = attrs.field(eq=False)


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
) -> Plan:
    """Load the manifest and resolve, configure and register its blocks, writing nothing."""
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
    pm.register(FusionBlock(None, block_id=FUSION_ID), name=FUSION_ID)
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
    routing = plan_routing(manifest, assembled, pm)
    trace = env.get(TRACE_ENV, "") not in ("", "0")
    if trace:
        # Calls that go through pluggy (lifecycle, every-block hooks) are traced by pluggy itself; the relay
        # traces the routed calls it makes directly.
        pm.trace.root.setwriter(lambda text: sys.stderr.write(f"[retailblocks trace] {text}"))
        pm.enable_tracing()
    relay = HookRelay(pm, {b.entry.id: b.instance for b in assembled}, routing, trace=trace)
    return Plan(manifest, tuple(assembled), pm, relay)


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


def assemble(
    manifest_path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    ids: IdFactory | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
    lease_clock: Clock | None = None,
    require_lock: bool = False,
) -> Stack:
    """Assemble the manifest into a running stack: validate everything, then prepare storage.

    ``require_lock`` is how operator commands open a stack: a manifest that was never assembled (it has no
    lock, see lockfile) is refused before any storage is prepared, and what changed since it was
    assembled is left in :attr:`Stack.lock_changes`. Without it (tests, embedding, simulations on a copy)
    storage is prepared as needed.

    ``clock`` is the business clock (what orders and events are stamped with; a simulation moves it);
    ``lease_clock`` is what flows' leases are measured on, the wall clock unless given: leases coordinate
    processes, which share only the wall clock. Assembling recovers nothing: flows a crash left half-way
    are finished where an operator asks for it (``blocks recover``, :meth:`Stack.recover`) and at server
    start, each of which reports what it did.
    """
    the_plan = plan(manifest_path, environ=environ, installed=installed)
    changes: list[str] = []
    if require_lock:
        from retailblocks.assembly.lockfile import check_assembled

        changes = check_assembled(the_plan, manifest_path)
    engine = prepare_storage(the_plan)
    stack = Stack(the_plan, engine, clock or SystemClock(), ids or RandomIds(), lease_clock=lease_clock)
    stack.lock_changes = tuple(changes)
    the_plan.plugin_manager.hook.stack_startup(stack=stack)
    return stack


def prepare_storage(the_plan: Plan) -> sa.Engine:
    """Create the database if needed and migrate every owner's tables.

    Storage that cannot be prepared (a file where the database's directory should be, a file that is not
    a database, a server that refuses) is a failure of the environment, reported in one sentence.
    """
    url = the_plan.manifest.database_url
    where = describe_url(url)
    database_file = sqlite_path(url)
    try:
        if database_file is not None:
            database_file.parent.mkdir(parents=True, exist_ok=True)
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
        engine.dispose()
        original = getattr(error, "orig", None) or error
        reason = " ".join(str(original).split()) or type(error).__name__
        raise EnvironmentFailure(
            f"{the_plan.manifest.path}: cannot prepare the stack's storage in {where}: {reason}"
        ) from None
    except BaseException:
        engine.dispose()
        raise
    return engine


class Stack:
    """A manifest assembled: configured blocks registered with one plugin manager, plus storage.

    The order flows are reached through :meth:`checkout`, :meth:`cancel`, :meth:`refund` and the readers
    :meth:`order` and :meth:`orders`; operators' housekeeping through :meth:`recover` and
    :meth:`dispatch_events`.
    """

    def __init__(
        self, the_plan: Plan, engine: sa.Engine, clock: Clock, ids: IdFactory, *, lease_clock: Clock | None = None
    ):
        self.plan = the_plan
        self.manifest = the_plan.manifest
        self.engine = engine
        self.clock = clock
        #: What flows' leases are measured on (see assemble), and how long one lasts.
        self.lease_clock: Clock = lease_clock or SystemClock()
        self.lease: timedelta = FLOW_LEASE
        self._fingerprint_key: bytes | None = None
        self.ids = ids
        self.hooks = the_plan.relay
        self.plugin_manager = the_plan.plugin_manager
        self.channels: dict[str, Channel] = {c.id: c for c in self.manifest.channels}
        self.catalog: dict[str, Product] = {p.sku: p for p in self.manifest.catalog}
        self.blocks: dict[str, Block] = {b.entry.id: b.instance for b in the_plan.blocks}
        self._flows: OrderFlows | None = None
        #: What changed in the manifest since its lock was written, when assembled with require_lock.
        self.lock_changes: tuple[str, ...] = ()
        self._closed = False
        #: Where a flow run leaves its SQLite connection for the next run (see keeping_connection).
        self.idle_connection = IdleConnection()

    # -- blocks and contexts ----------------------------------------------------------------------

    @property
    def merchant(self) -> Merchant:
        return self.manifest.merchant

    @property
    def currency(self) -> str:
        return str(self.manifest.merchant.currency)

    def block(self, block_id: str) -> Block:
        try:
            return self.blocks[block_id]
        except KeyError:
            raise AssemblyError(f"no block {block_id!r} in this stack (blocks: {', '.join(self.blocks)})") from None

    def block_providing(self, capability: str) -> Block:
        """The first block (in manifest order) that declares ``capability``."""
        for block in self.blocks.values():
            if capability in block.capabilities:
                return block
        raise AssemblyError(f"no block in this stack provides {capability}")

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            known = ", ".join(self.channels)
            raise UnknownChannel(f"unknown channel {channel_id!r}; this stack's channels: {known}") from None

    def new_context(
        self,
        uow: UnitOfWork,
        channel: str | None = None,
        *,
        flow: str = "operator",
        flow_id: str = "",
        key: str = "",
    ) -> FlowContext:
        return FlowContext(
            merchant=self.manifest.merchant,
            channel=self.channel(channel) if channel else None,
            clock=self.clock,
            ids=self.ids,
            uow=uow,
            flow=flow,
            flow_id=flow_id,
            idempotency_key=key,
        )

    @contextmanager
    def context(
        self,
        channel: str | None = None,
        *,
        flow: str = "operator",
        flow_id: str = "",
        key: str = "",
        read_only: bool = False,
    ) -> Iterator[FlowContext]:
        """A flow context whose unit of work commits when the block returns and rolls back if it raises."""
        with UnitOfWork(self.engine, read_only=read_only) as uow:
            yield self.new_context(uow, channel, flow=flow, flow_id=flow_id, key=key)

    # -- order flows ------------------------------------------------------------------------------

    @property
    def flows(self) -> OrderFlows:
        if self._flows is None:
            from retailblocks.flows.api import OrderFlows

            self._flows = OrderFlows(self)
        return self._flows

    def checkout(self, cart: Any, *, key: str, **options: Any) -> Any:
        """Run the checkout saga for ``cart`` under idempotency ``key``; returns the order."""
        return self.flows.checkout(cart, key=key, **options)

    def cancel(self, order_id: str, *, key: str | None = None, reason: str = "") -> Any:
        return self.flows.cancel(order_id, key=key, reason=reason)

    def refund(
        self,
        order_id: str,
        lines: Mapping[int, int] | None = None,
        *,
        key: str,
        reason: str = "",
        restock: bool = True,
    ) -> Any:
        return self.flows.refund(order_id, lines, key=key, reason=reason, restock=restock)

    def order(self, order_id: str) -> Any:
        return self.flows.order(order_id)

    def orders(self, **filters: Any) -> Sequence[Any]:
        return self.flows.orders(**filters)

    def recover(self, **options: Any) -> Any:
        return self.flows.recover(**options)

    def lease_until(self) -> datetime:
        """When a lease taken now runs out."""
        return self.lease_clock.now() + self.lease

    @property
    def fingerprint_key(self) -> bytes:
        """The stack's key for hashing request details that must not be stored (see storage.secrets)."""
        if self._fingerprint_key is None:
            from retailblocks.storage.secrets import fingerprint_key

            self._fingerprint_key = fingerprint_key(self.engine)
        return self._fingerprint_key

    def dispatch_events(self, **options: Any) -> Any:
        from retailblocks.events.dispatcher import dispatch

        return dispatch(self, **options)

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.plugin_manager.hook.stack_shutdown(stack=self)
        finally:
            self.idle_connection.close()
            self.engine.dispose()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
