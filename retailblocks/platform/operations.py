"""The platform's operations: check, assemble, list, pause, resume, add — one function each, which the CLI
(``blocks platform …``) and the server call.

Each merchant is planned and assembled from its own ``blocks.yaml`` (its own blocks, versions and
configuration) into a :class:`~retailblocks.stack.Stack` of its own; only its storage is decided here
(:mod:`retailblocks.platform.placement`). The merchants' live status is kept in the platform's table
(:mod:`retailblocks.platform.registry`): ``status:`` in ``platform.yaml`` is the status a merchant is
registered with when first assembled; pausing and resuming change the table, which every worker reads.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import attrs
import sqlalchemy as sa

from retailblocks.assembly.discovery import BlockInfo
from retailblocks.assembly.plan import Plan
from retailblocks.clock import SystemClock
from retailblocks.errors import AssemblyError, EnvironmentFailure, InvalidInput, UnknownObject
from retailblocks.manifest.errors import ManifestError, ManifestProblems
from retailblocks.model import Money
from retailblocks.platform import registry
from retailblocks.platform.manifest import (
    PLATFORM_PARTNER,
    MerchantEntry,
    MerchantStatus,
    PlatformManifest,
    load_platform,
)
from retailblocks.platform.placement import Placement
from retailblocks.platform.rights import Settlement, SharedRights, settle
from retailblocks.stack import Stack, assemble, plan

#: How many merchants ``assemble_platform`` migrates at once.
ASSEMBLY_THREADS = 4
#: How long a worker trusts the statuses it read (a pause takes effect within this many seconds).
STATUS_TTL_SECONDS = 2.0


@attrs.frozen
class MerchantSummary:
    """One merchant as the platform sees it. ``status`` is ``unassembled`` until its first assembly."""

    id: str
    status: str
    database: str
    manifest: str
    blocks: tuple[str, ...]


def _summary(
    entry: MerchantEntry, status: str, blocks: tuple[str, ...], database: str | None = None
) -> MerchantSummary:
    return MerchantSummary(entry.id, status, database or entry.database, os.fspath(entry.manifest), blocks)


def check_platform(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> list[MerchantSummary]:
    """Validate ``platform.yaml`` and every merchant's manifest, writing nothing; every problem of every
    file is reported at once."""
    platform = load_platform(path, environ)
    installed = installed if installed is not None else _discover(environ)
    problems = ManifestProblems()
    found: list[MerchantSummary] = []
    for entry in platform.merchants:
        merchant_plan = problems.attempt(lambda e=entry: _plan(platform, e, environ, installed))  # type: ignore[misc]
        if merchant_plan is not None:
            problems.attempt(lambda e=entry, p=merchant_plan: _check_rights_currency(platform, e, p))  # type: ignore[misc]
            found.append(_summary(entry, entry.status.value, tuple(b.entry.id for b in merchant_plan.blocks)))
    problems.raise_any()
    return found


def _check_rights_currency(platform: PlatformManifest, entry: MerchantEntry, merchant_plan: Plan) -> None:
    """A right the platform shares at a merchant is worth money in the merchant's own currency: a CNY coupon
    at a EUR shop would put a line in a currency its books do not keep."""
    currency = merchant_plan.manifest.merchant.currency
    rights = platform.rights
    shared = [(f"points programme {rights.points.name!r}", rights.points.value)] if rights.points else []
    if rights.points is not None and entry.id not in rights.points.merchants:
        shared = []
    shared += [(f"coupon {c.code}", c.value) for c in rights.coupons if entry.id in c.merchants]
    for what, value in shared:
        if value.currency != currency:
            raise ManifestError(
                f"the platform's {what} is in {value.currency} but merchant {entry.id!r} keeps {currency}; "
                "a merchant joins only rights in its own currency",
                file=os.fspath(platform.path),
            )


def _discover(environ: Mapping[str, str] | None) -> dict[str, BlockInfo]:
    from retailblocks.assembly.discovery import discover

    return discover(dict(os.environ if environ is None else environ))


def _plan(
    platform: PlatformManifest,
    entry: MerchantEntry,
    environ: Mapping[str, str] | None,
    installed: Mapping[str, BlockInfo] | None,
) -> Plan:
    the_plan = plan(entry.manifest, environ=environ, installed=installed)
    if the_plan.manifest.merchant.id != entry.id:
        # The id names the merchant's schema and its URLs; two names for one merchant would be a trap.
        raise ManifestError(
            f"merchant {entry.id!r} of {platform.path} is {the_plan.manifest.merchant.id!r} in its own manifest; "
            "give both the same id",
            file=os.fspath(entry.manifest),
        )
    return the_plan


class Platform:
    """A platform opened: its manifest, its databases, and (for serving) its merchants' stacks, each
    assembled the first time it is needed."""

    def __init__(
        self,
        manifest: PlatformManifest,
        *,
        environ: Mapping[str, str] | None = None,
        installed: Mapping[str, BlockInfo] | None = None,
    ):
        self.manifest = manifest
        self.environ = environ
        self._installed = installed
        self.placement = Placement(manifest)
        self._home: sa.Engine | None = None
        self._rights: SharedRights | None = None
        #: Each merchant's stack with the database it was assembled on.
        self._stacks: dict[str, tuple[str, Stack]] = {}
        self._lock = threading.Lock()
        self._statuses: dict[str, MerchantStatus] = {}
        #: Where moved merchants live (the registry's placements), read with the statuses.
        self._locations: dict[str, str] = {}
        self._read_at = -1.0

    @property
    def installed(self) -> Mapping[str, BlockInfo]:
        """The installed blocks, discovered once for every merchant (entry points are read from disk)."""
        if self._installed is None:
            self._installed = _discover(self.environ)
        return self._installed

    @property
    def home(self) -> sa.Engine:
        if self._home is None:
            engine = self.placement.home_engine()
            try:
                registry.create(engine)
            except sa.exc.SQLAlchemyError as error:
                raise EnvironmentFailure(
                    f"{self.manifest.path}: cannot prepare the platform's table: {type(error).__name__}"
                ) from None
            self._home = engine
        return self._home

    @property
    def rights(self) -> SharedRights:
        """The rights the platform shares across its merchants, kept on its home database."""
        if self._rights is None:
            try:
                self._rights = SharedRights(self.manifest, self.home)
            except sa.exc.SQLAlchemyError as error:
                raise EnvironmentFailure(
                    f"{self.manifest.path}: cannot prepare the platform's rights tables: {type(error).__name__}"
                ) from None
        return self._rights

    def settle(self, start: date, end: date, merchants: Sequence[str] | None = None) -> Settlement:
        """The platform's settlement with its merchants (:func:`retailblocks.platform.rights.settle`), each
        statement carrying what the merchant's own ledger bills partner ``platform`` for the period when the
        merchant declares that partner and is assembled. Each merchant's ledger is read through its own
        stack — its own schema and role — never by one query across merchants."""
        from retailblocks.fusion.settlement import settle as settle_partner

        registered = self.statuses(fresh=True)
        wanted = list(merchants) if merchants is not None else [entry.id for entry in self.manifest.merchants]
        plans: dict[str, Plan] = {}
        for merchant in wanted:
            if merchant in registered:
                # A merchant whose manifest no longer plans is settled from the platform's ledger alone.
                with contextlib.suppress(ManifestError, AssemblyError):
                    plans[merchant] = plan(self.manifest.merchant(merchant).manifest, environ=self.environ,
                                           installed=self.installed)  # fmt: skip
        # A merchant with nothing in the platform's ledger still gets a statement, in its own currency.
        currencies = {merchant: found.manifest.merchant.currency for merchant, found in plans.items()}
        settlement = settle(self.rights, start, end, merchants, currencies=currencies)
        statements = []
        for statement in settlement.statements:
            merchant_plan = plans.get(statement.merchant)
            declared = merchant_plan is not None and any(
                partner.id == PLATFORM_PARTNER for partner in merchant_plan.manifest.partners
            )
            if declared:
                own = settle_partner(self.stack(statement.merchant), PLATFORM_PARTNER, start, end)
                ledger = Money(own.total("discount") + own.total("clawback"), statement.currency)
                statement = attrs.evolve(statement, merchant_ledger=ledger)
            statements.append(statement)
        return attrs.evolve(settlement, statements=tuple(statements))

    # -- assembling ---------------------------------------------------------------------------------

    def assemble_merchant(self, entry: MerchantEntry) -> MerchantSummary:
        """Migrate the merchant's schema (or file), write its lock beside its manifest, register it."""
        from retailblocks.assembly.lockfile import write_lock

        engine = self.placement.merchant_engine(entry, self.database_of(entry.id, fresh=True))
        stack = assemble(entry.manifest, environ=self.environ, installed=self.installed, engine=engine)
        try:
            try:
                write_lock(stack.plan)
            except OSError as error:
                raise EnvironmentFailure(
                    f"{entry.manifest}: cannot write the lock beside it: {error.strerror or error}"
                ) from None
            blocks = tuple(block.entry.id for block in stack.plan.blocks)
        finally:
            stack.close()
        status = registry.register(self.home, entry.id, entry.status, SystemClock().now())
        return _summary(entry, status.value, blocks, self.database_of(entry.id))

    # -- status ---------------------------------------------------------------------------------------

    def statuses(self, *, fresh: bool = False) -> dict[str, MerchantStatus]:
        """The registered merchants' statuses, read again when older than :data:`STATUS_TTL_SECONDS`."""
        now = time.monotonic()
        if fresh or now - self._read_at > STATUS_TTL_SECONDS:
            read = registry.statuses(self.home)
            placed = {merchant_id: row.database for merchant_id, row in registry.locations(self.home).items()}
            with self._lock:
                self._statuses, self._locations, self._read_at = read, placed, now
        return self._statuses

    def database_of(self, merchant_id: str, *, fresh: bool = False) -> str:
        """The database the merchant lives on: where the registry says a move left it, else its
        ``database:`` in ``platform.yaml``."""
        self.statuses(fresh=fresh)
        found = self._locations.get(merchant_id)
        return found if found is not None else self.manifest.merchant(merchant_id).database

    def set_status(self, merchant_id: str, status: MerchantStatus) -> MerchantSummary:
        entry = self.manifest.merchant(merchant_id)
        if not registry.set_status(self.home, merchant_id, status, SystemClock().now()):
            if self.statuses(fresh=True).get(merchant_id) is MerchantStatus.MOVING:
                raise InvalidInput(
                    f"merchant {merchant_id!r} is being moved to another database; its status is the move's "
                    "until it is done (run `blocks platform move` again to finish a move that was cut short)"
                )
            raise UnknownObject(
                f"merchant {merchant_id!r} was never assembled; run `blocks platform add {merchant_id}` first"
            )
        return _summary(entry, status.value, (), self.database_of(merchant_id))

    # -- serving ----------------------------------------------------------------------------------------

    def stack(self, merchant_id: str) -> Stack:
        """The merchant's stack, assembled on first use on its placed storage (its lock must exist)."""
        database = self.database_of(merchant_id)
        with self._lock:
            found = self._stacks.get(merchant_id)
        if found is not None and found[0] == database:
            return found[1]
        entry = self.manifest.merchant(merchant_id)
        engine = self.placement.merchant_engine(entry, database)
        stack = assemble(
            entry.manifest, environ=self.environ, installed=self.installed, engine=engine, require_lock=True
        )
        with self._lock:
            kept = self._stacks.get(merchant_id)
            if kept is None or kept[0] != database:
                # Moved since its stack was assembled: the old one (on the source, which served nothing
                # since the move paused the merchant) is replaced.
                self._stacks[merchant_id] = (database, stack)
                replaced, kept = kept, (database, stack)
            else:
                replaced = None
        if kept[1] is not stack:
            stack.close()
        if replaced is not None:
            replaced[1].close()
        return kept[1]

    def reload(self) -> None:
        """Read ``platform.yaml`` again, so a merchant added to it since start can be served."""
        self.manifest = load_platform(self.manifest.path, self.environ)
        self.placement.platform = self.manifest

    def close(self) -> None:
        with self._lock:
            stacks = [stack for _database, stack in self._stacks.values()]
            self._stacks.clear()
        for stack in stacks:
            stack.close()
        self.placement.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_platform(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> Platform:
    return Platform(load_platform(path, environ), environ=environ, installed=installed)


def assemble_platform(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> list[MerchantSummary]:
    """Check everything first, then migrate every merchant and write each merchant's lock."""
    installed = installed if installed is not None else _discover(environ)
    check_platform(path, environ=environ, installed=installed)
    with open_platform(path, environ=environ, installed=installed) as platform:
        # Creating a merchant's tables is mostly waiting for the database (a commit per migration): merchants
        # are assembled a few at a time, within the connections one server process may use.
        smallest_pool = min((database.pool_size for database in platform.manifest.databases.values()), default=1)
        with ThreadPoolExecutor(max_workers=max(1, min(ASSEMBLY_THREADS, smallest_pool))) as pool:
            return list(pool.map(platform.assemble_merchant, platform.manifest.merchants))


def add_merchant(
    path: str | os.PathLike[str],
    merchant_id: str,
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> MerchantSummary:
    """Assemble one merchant newly written into ``platform.yaml``; serving workers pick it up without a
    restart (they read the file again when asked for a merchant they do not know)."""
    with open_platform(path, environ=environ, installed=installed) as platform:
        entry = platform.manifest.merchant(merchant_id)
        _plan(platform.manifest, entry, environ, platform.installed)
        return platform.assemble_merchant(entry)


def list_platform(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    installed: Mapping[str, BlockInfo] | None = None,
) -> list[MerchantSummary]:
    """Every merchant with its live status (``unassembled`` when never assembled), database and blocks."""
    with open_platform(path, environ=environ, installed=installed) as platform:
        statuses = platform.statuses(fresh=True)
        found = []
        for entry in platform.manifest.merchants:
            try:
                merchant_plan = plan(entry.manifest, environ=environ, installed=platform.installed)
                blocks = tuple(block.entry.id for block in merchant_plan.blocks)
            except (ManifestError, AssemblyError):
                blocks = ()
            status = statuses.get(entry.id)
            found.append(
                _summary(entry, status.value if status else "unassembled", blocks, platform.database_of(entry.id))
            )
        return found


@attrs.frozen
class Removal:
    """What removing a merchant did: where its data was archived (None when it had none left), the rows
    archived per table, and whether its storage was dropped."""

    id: str
    archive: str | None
    rows: Mapping[str, int]


def remove_merchant(
    path: str | os.PathLike[str],
    merchant_id: str,
    archive_directory: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
) -> Removal:
    """Pause the merchant, archive every row of its storage to ``archive_directory/<id>-<time>/`` (one
    JSON Lines file per table), then drop its schema and role (or delete its file) and deregister it.

    Safe to run again after a crash: the archive is complete (and fsynced) before anything is dropped, a new
    run never overwrites an earlier archive, and storage already dropped is not archived again (empty).
    Write the merchant out of ``platform.yaml`` afterwards.
    """
    from retailblocks.platform import archive

    with open_platform(path, environ=environ) as platform:
        entry = platform.manifest.merchant(merchant_id)
        clock = SystemClock()
        moving = registry.locations(platform.home).get(merchant_id)
        if platform.statuses(fresh=True).get(merchant_id) is MerchantStatus.MOVING or (
            # An online move copies a merchant that is still served: its replication reads the source.
            moving is not None and moving.moving_to is not None
        ):
            raise InvalidInput(
                f"merchant {merchant_id!r} is being moved; finish the move (`blocks platform move`) first"
            )
        registry.set_status(platform.home, merchant_id, MerchantStatus.PAUSED, clock.now())
        database = platform.placement.database(platform.database_of(merchant_id), merchant_id)
        try:
            if database.directory is not None:
                written = archive.remove_sqlite(
                    database.directory / f"{entry.id}.db", entry.id, archive_directory, clock
                )
            else:
                server = platform.placement.server(database)
                written = archive.remove_schema(
                    server, entry.schema, entry.id, archive_directory, clock, role=database.roles
                )
        except sa.exc.SQLAlchemyError as error:
            raise EnvironmentFailure(
                f"cannot remove merchant {merchant_id!r} from {database.describe()}: {type(error).__name__}; "
                "nothing was dropped unless its archive was complete"
            ) from None
        registry.remove(platform.home, merchant_id)
        return Removal(merchant_id, os.fspath(written[0]) if written[0] else None, written[1])


def pause_merchant(
    path: str | os.PathLike[str], merchant_id: str, *, environ: Mapping[str, str] | None = None
) -> MerchantSummary:
    """Pause a merchant: every worker answers its routes 503 within a few seconds; its data stays."""
    with open_platform(path, environ=environ) as platform:
        return platform.set_status(merchant_id, MerchantStatus.PAUSED)


def resume_merchant(
    path: str | os.PathLike[str], merchant_id: str, *, environ: Mapping[str, str] | None = None
) -> MerchantSummary:
    with open_platform(path, environ=environ) as platform:
        return platform.set_status(merchant_id, MerchantStatus.ACTIVE)


def settle_platform(
    path: str | os.PathLike[str],
    start: date,
    end: date,
    *,
    merchants: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settlement:
    """Each merchant's statement with the platform over the UTC days ``[start, end]``, from the platform's
    ledger of shared rights (``blocks platform settle`` and ``GET /platform/settlement``), each reconciled
    with the merchant's own ledger when the merchant declares the partner ``platform``."""
    with open_platform(path, environ=environ) as platform:
        return platform.settle(start, end, merchants)
