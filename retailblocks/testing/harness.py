"""The block author's test bench: one block assembled into a real small stack, called through the hooks.

:class:`BlockHarness` writes a manifest naming the block, assembles it exactly as ``blocks assemble`` does
(:func:`retailblocks.stack.assemble`: pluggy registration and ``check_pending``, argument names checked
against the specifications, the capability's required hooks, ``stack_check``, configuration with
``${VAR}`` secrets, core and block migrations, ``stack_startup``) and calls the block through the plan's
:class:`~retailblocks.assembly.hooks.Hooks`. A block with a misspelled hook, a forgotten ``@hookimpl`` or
a wrong argument name therefore fails here as it would fail in a merchant's stack: at construction
(an :class:`~retailblocks.errors.AssemblyError`), or on the call ("does not implement").
"""

from __future__ import annotations

import inspect
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import sqlalchemy as sa

from retailblocks.assembly.discovery import BlockInfo
from retailblocks.assembly.hooks import Hooks
from retailblocks.clock import ManualClock, RandomIds
from retailblocks.context import Event, FlowContext
from retailblocks.events.dispatcher import event_from_row
from retailblocks.hookspecs import FLOW_CAPABILITIES
from retailblocks.hookspecs.blocks import Block, NoConfig
from retailblocks.model import Channel, ChannelType, Merchant
from retailblocks.stack import Stack, assemble
from retailblocks.storage import UnitOfWork
from retailblocks.storage.tables import outbox
from retailblocks.testing.standins import STAND_INS, DeclaredNames

R = TypeVar("R")

DEFAULT_CHANNELS = (
    Channel("web", ChannelType.ONLINE),
    Channel("marketplace", ChannelType.MARKETPLACE),
    Channel("store-1", ChannelType.STORE, location="store-1"),
)
DEFAULT_MERCHANT = Merchant("test-shop", "Test Shop", "CNY")
#: The distribution name the harness gives the blocks it installs (assembly messages name it).
KIT_DISTRIBUTION = "retailblocks-test-kit"


@attrs.frozen
class Step:
    """One committed step the harness watched (see :meth:`BlockHarness.watching`): which of the block's
    tables it changed and which events it recorded."""

    flow: str
    channel: str | None
    changed_tables: tuple[str, ...]
    events: tuple[Event, ...]


class BlockHarness:
    """One block assembled into a small stack on ``database_url``, with flow contexts and hook calls.

    ``block`` is the block's class, configured from ``config`` (the manifest's ``config:`` for it, with
    ``${VAR}`` taken from ``environ``) the way a manifest configures it. A block's own unit tests may
    pass an instance instead (one built with a fake gateway, say): it is assembled as it is, with every
    check but the configuration's.

    The stack gets the merchant, the channels and, under ``manifest``, any further top-level manifest
    sections (``catalog``, ``partners``, ``segments``…). ``companions`` are further blocks to assemble
    beside it, as ``(class, config)``; a capability the order flows need that neither provides gets a
    stand-in that answers no calls (:mod:`retailblocks.testing.standins`). ``names`` are what the other
    blocks of a stack would declare (``{"location": [...], "tier": [...]}``), for a block whose
    configuration refers to some; a stand-in declares them. ``skus`` become the
    manifest's catalog (a product each, titled by its SKU, at 1.00 of the merchant's currency) unless
    ``manifest`` gives a ``catalog``.

    ``harness.context("web")`` yields a :class:`FlowContext` whose unit of work commits when the
    ``with`` block ends and rolls back when it raises, as a flow step does; ``harness.call(spec, ...)``
    calls the block's implementation of a hook specification through the stack's hooks.
    """

    def __init__(
        self,
        block: type[Block] | Block,
        database_url: str,
        *,
        config: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        merchant: Merchant | None = None,
        channels: Sequence[Channel] = DEFAULT_CHANNELS,
        clock: ManualClock | None = None,
        seed: int = 0,
        block_id: str | None = None,
        companions: Sequence[tuple[type[Block], Mapping[str, Any]]] = (),
        manifest: Mapping[str, Any] | None = None,
        names: Mapping[str, Sequence[str]] | None = None,
        skus: Sequence[str] = (),
    ):
        if isinstance(block, Block):
            if config is not None:
                raise TypeError("pass `config` with a block class; an instance is already configured")
            block_class: type[Block] = _serving(block)
            block_id = block.id
        else:
            block_class = block
        self.block_id: str = block_id or block_class.name
        self.merchant = merchant or DEFAULT_MERCHANT
        self.clock = clock or ManualClock()
        self.ids = RandomIds(seed)
        self.environ: dict[str, str] = dict(environ or {})
        #: Every exception a call through :meth:`call` raised, for the contracts' checks on error messages.
        self.raised: list[BaseException] = []
        self._steps: list[Step] | None = None
        self._directory = Path(tempfile.mkdtemp(prefix="retailblocks-kit-"))
        self.manifest_path = self._directory / "blocks.yaml"
        entries: list[tuple[type[Block], str, Mapping[str, Any]]] = [(block_class, self.block_id, config or {})]
        entries += [(companion, companion.name, companion_config) for companion, companion_config in companions]
        provided = {capability for cls, _, _ in entries for capability in cls.capabilities}
        entries += [(STAND_INS[c], STAND_INS[c].name, {}) for c in sorted(FLOW_CAPABILITIES) if c not in provided]
        if names:
            declared = {kind: list(values) for kind, values in names.items()}
            entries.append((DeclaredNames, DeclaredNames.name, {"names": declared}))
        document: dict[str, Any] = {
            "version": 1,
            "merchant": {"id": self.merchant.id, "name": self.merchant.name, "currency": self.merchant.currency},
            "database": database_url,
            "channels": [_channel_entry(channel) for channel in channels],
            "blocks": [{"use": cls.name, "id": entry_id, "config": dict(cfg)} for cls, entry_id, cfg in entries],
        }
        if skus:
            price = f"1.00 {self.merchant.currency}"
            document["catalog"] = [{"sku": sku, "title": sku, "price": price} for sku in skus]
        document.update(manifest or {})
        # JSON is YAML: the manifest is read by the same loader as any merchant's.
        self.manifest_path.write_text(json.dumps(document, indent=2, default=_unwritable), encoding="utf-8")
        installed = {
            cls.name: BlockInfo(cls.name, KIT_DISTRIBUTION, "0", f"{cls.__module__}:{cls.__qualname__}", cls)
            for cls, _, _ in entries
        }
        try:
            self.stack: Stack = assemble(
                self.manifest_path, environ=self.environ, clock=self.clock, ids=self.ids, installed=installed
            )
        except BaseException:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
        self.engine: sa.Engine = self.stack.engine
        self.hooks: Hooks = self.stack.hooks
        #: The instance assembly made (the one given, when an instance was given).
        self.block: Block = self.stack.block(self.block_id)
        self.channels: dict[str, Channel] = dict(self.stack.channels)

    # -- steps --------------------------------------------------------------------------------------

    @contextmanager
    def context(
        self, channel: str | None = "web", *, flow: str = "test", flow_id: str = "", key: str = ""
    ) -> Iterator[FlowContext]:
        """A flow context whose unit of work commits when the block returns and rolls back if it raises."""
        before = self._watch_point() if self._steps is not None else None
        with UnitOfWork(self.engine) as uow:
            ctx = self.stack.new_context(uow, channel, flow=flow, flow_id=flow_id, key=key)
            ctx.current_block = self.block_id
            yield ctx
        if before is not None and self._steps is not None:
            self._steps.append(self._step_since(before, flow, channel))

    def call(self, spec: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call the block's implementation of ``spec`` (a hook specification such as
        ``retailblocks.hookspecs.payment.payment_authorize``) through the stack's hooks, as a flow does.

        A hook that takes a ``ctx`` and is given none runs in a step of its own on the ``web`` channel
        (committed when it returns); to choose the channel or the flow id, pass one from :meth:`context`.
        """
        if "ctx" in inspect.signature(spec).parameters and not _has_context(args, kwargs):
            with self.context() as ctx:
                return self.call(spec, ctx, *args, **kwargs)
        try:
            return self.hooks.at(self.block_id, spec, *args, **kwargs)
        except BaseException as error:
            self.raised.append(error)
            raise

    def implements(self, spec: Callable[..., Any]) -> bool:
        """Whether the block implements the hook ``spec`` (an optional hook may be left out)."""
        return self.block_id in self.hooks.implementers(spec)

    # -- what the block left behind -------------------------------------------------------------------

    def events(self, event_type: str | None = None) -> list[Event]:
        """Events recorded in this stack, oldest first."""
        query = sa.select(outbox).order_by(outbox.c.id)
        if event_type is not None:
            query = query.where(outbox.c.type == event_type)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [event_from_row(row) for row in rows]

    def block_tables(self) -> list[str]:
        """The tables the block owns (named with its ``table_prefix``)."""
        prefix = self.block.table_prefix
        names = sa.inspect(self.engine).get_table_names()
        return sorted(name for name in names if name == prefix or name.startswith(prefix + "_"))

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table the block owns, for comparing the block's state before and after."""
        tables = self.block_tables()
        metadata = sa.MetaData()
        found: dict[str, list[tuple[Any, ...]]] = {}
        with self.engine.connect() as connection:
            for name in tables:
                table = sa.Table(name, metadata, autoload_with=connection)
                rows = connection.execute(sa.select(table)).all()
                found[name] = sorted((tuple(row) for row in rows), key=repr)
        return found

    @contextmanager
    def watching(self) -> Iterator[list[Step]]:
        """Record, for every committed :meth:`context` (and so every :meth:`call`) inside the ``with``,
        which of the block's tables changed and which events were recorded."""
        steps: list[Step] = []
        self._steps = steps
        try:
            yield steps
        finally:
            self._steps = None

    def _watch_point(self) -> tuple[dict[str, list[tuple[Any, ...]]], int]:
        with self.engine.connect() as connection:
            last = connection.execute(sa.select(sa.func.max(outbox.c.id))).scalar()
        return self.snapshot(), int(last or 0)

    def _step_since(self, before: tuple[dict[str, list[tuple[Any, ...]]], int], flow: str, channel: str | None) -> Step:
        rows_before, last_event = before
        rows_after = self.snapshot()
        changed = tuple(name for name in rows_after if rows_after[name] != rows_before.get(name, []))
        events = tuple(event for event in self.events() if event.id > last_event)
        return Step(flow, channel, changed, events)

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> BlockHarness:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _has_context(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    return "ctx" in kwargs or bool(args and isinstance(args[0], FlowContext))


def _channel_entry(channel: Channel) -> dict[str, str]:
    entry = {"id": channel.id, "type": channel.type.value}
    for field in ("location", "name", "settles_with"):
        value = getattr(channel, field)
        if value is not None:
            entry[field] = value
    return entry


def _unwritable(value: object) -> object:
    raise TypeError(
        f"the harness writes `config` into a manifest, which holds YAML's types only; write {value!r} as a "
        "manifest would (a string such as '30s' or '10.00 CNY', a number, a list or a mapping)"
    )


def _serving(instance: Block) -> type[Block]:
    """A class that assembly can install and configure, whose construction yields ``instance`` itself."""
    original = type(instance)

    def new(_cls: type[Block], _config: object, *, block_id: str | None = None) -> Block:
        return instance

    # Assembly builds the (empty) configuration of NoConfig and calls the class; __new__ hands back the
    # instance, whose class is not this one, so its __init__ is not run again.
    return type(
        original.__name__,
        (original,),
        {"__new__": new, "Config": NoConfig, "__module__": original.__module__, "__qualname__": original.__qualname__},
    )
