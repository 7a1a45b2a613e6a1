"""What a block is: a class that names itself, its capabilities, the core API it targets and its config."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from retailblocks.hookspecs import Capability

if TYPE_CHECKING:
    import click


def secret_field(**kwargs: Any) -> Any:
    """An attrs field whose value is a secret: never printed, logged, or written to the lock file."""
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata["secret"] = True
    return attrs.field(metadata=metadata, repr=False, **kwargs)


def is_secret(field: attrs.Attribute[Any]) -> bool:
    return bool(field.metadata.get("secret"))


@attrs.frozen
class NoConfig:
    """The configuration of a block that takes none."""


class Block:
    """Base class of every block.

    A subclass declares ``name`` (its entry-point name), ``capabilities``, ``core_api`` ("major.minor" of
    the core API it was written against) and ``Config`` (an attrs class). Payment blocks also declare the
    ``payment_methods`` they answer, reach blocks the ``reach_mediums`` they send; a marketing block that
    combines with no other says ``exclusive``. The stack creates one instance per manifest entry with its validated
    configuration and registers it with the plugin manager; hook implementations are methods marked with
    :data:`retailblocks.hookimpl`.

    Its table permissions, shown by ``blocks plugins`` and checked by ``blocks assemble`` and, in tests, on
    every statement: ``owns_tables`` (the tables it owns besides those its migrations create with
    :func:`~retailblocks.storage.create_tables`; any table named with ``table_prefix`` is its too) and
    ``reads_core_tables`` (the core tables it reads through ``ctx.db``: ``("orders", "order_lines")``).
    A block writes only its own tables; it never writes the core's. Left at None, the permissions are
    undeclared: the block is taken to own what its migrations create and its prefix names and to read no
    core table, and ``blocks assemble`` says so.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    core_api: ClassVar[str] = "1.0"
    Config: ClassVar[type[Any]] = NoConfig
    payment_methods: ClassVar[tuple[str, ...]] = ()
    #: For reach blocks: the mediums (retailblocks.hookspecs.reach.MEDIUMS) whose messages the block sends;
    #: an instance may narrow them from its configuration (which mediums its account has).
    reach_mediums: tuple[str, ...] = ()
    description: ClassVar[str] = ""
    #: Tables the block owns beyond those its migrations create and those named with its prefix; None:
    #: not declared.
    owns_tables: ClassVar[tuple[str, ...] | None] = None
    #: Core tables the block reads (``"orders"``, ``"order_lines"``…); None: not declared (read as none).
    reads_core_tables: ClassVar[tuple[str, ...] | None] = None
    #: A marketing block whose adjustments never combine with other marketing blocks' ("not combinable
    #: with other offers"): the core applies either its adjustments alone or the others', whichever gives
    #: the shopper more (docs/marketing-stacking.md). A manifest can make a block exclusive, never undo this.
    exclusive: ClassVar[bool] = False

    def __init__(self, config: Any, *, block_id: str | None = None):
        self.config = config
        #: The instance id from the manifest (defaults to the block's name). Tables use ``table_prefix``.
        self.id = block_id or self.name

    @property
    def table_prefix(self) -> str:
        """Prefix of the tables this block owns: its name, made safe for SQL identifiers."""
        return self.name.replace("-", "_")

    @classmethod
    def cli_commands(cls) -> Sequence[click.Command]:
        """Operator commands the block adds to ``blocks`` (``blocks stock …``). Each takes the manifest as
        ``-m/--manifest`` (:func:`retailblocks.cli.support.manifest_option`), offers ``--json``
        (:func:`~retailblocks.cli.support.json_option`) and opens the stack with
        :func:`~retailblocks.cli.support.open_stack`.

        Name them in your distribution's ``retailblocks.commands`` entry-point group too
        (``stock = "my_block.commands:stock_group"``) and keep that module free of the block's imports:
        ``blocks --help`` then lists them without loading any block. Commands only returned here are
        found when asked for by name, which loads every installed block."""
        return ()

    def __repr__(self) -> str:
        return f"<block {self.id} ({type(self).__module__}.{type(self).__qualname__})>"
