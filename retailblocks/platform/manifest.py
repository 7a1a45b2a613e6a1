"""``platform.yaml``: one deployment serving many merchants, each assembled from its own ``blocks.yaml``.

::

    platform: {id: metro-group, name: Metro Group}
    databases:
      main: {url: "${PLATFORM_DATABASE_URL}", roles: true}   # PostgreSQL: one schema per merchant
      local: {directory: .platform/merchants}                # SQLite: one file per merchant
    merchants:
      - {id: corner-shop, manifest: shops/corner/blocks.yaml, database: main}
      - {id: lucky-coffee, manifest: shops/lucky/blocks.yaml, database: main, status: paused}
    api:
      keys:
        - {id: ops, scopes: ["platform:write"], key: "${PLATFORM_OPS_KEY}"}

Read like a stack's manifest (retailblocks.manifest): every problem is one line naming the file, line and
column, and several independent problems are reported at once. The merchants' own manifests are not read
here: :mod:`retailblocks.platform.operations` plans each of them.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs
import sqlalchemy as sa

from retailblocks.errors import InvalidValue
from retailblocks.manifest import readers
from retailblocks.manifest.api import ApiKey, secret_key_digest
from retailblocks.manifest.errors import ManifestError, ManifestProblems
from retailblocks.manifest.model import mask_password
from retailblocks.manifest.nodes import Node
from retailblocks.manifest.yamlsource import load_document, read_source
from retailblocks.model import Money

#: A merchant's id names its schema (``m_<id>``) and its SQLite file: lower-case letters, digits and '-'
#: (no '_', so that two ids never map to one schema), at most 40 characters (PostgreSQL names stop at 63).
MERCHANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
PLATFORM_SCOPES = ("platform:read", "platform:write", "*")
_TOP_KEYS = ("platform", "databases", "merchants", "api", "rights")
#: The partner id a merchant's ledgers name the platform by when it settles shared rights with it.
PLATFORM_PARTNER = "platform"
#: A platform coupon's code: upper-case letters, digits and '-', as shoppers type them.
COUPON_CODE = re.compile(r"[A-Z0-9][A-Z0-9-]{1,39}")


class MerchantStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    #: Being moved to another database (``blocks platform move``): served as paused; never written in
    #: ``platform.yaml``, only by the move itself.
    MOVING = "moving"


@attrs.frozen
class DatabaseServer:
    """Where merchants' data lives: a PostgreSQL server (one schema each) or a directory (one SQLite file
    each). With ``roles``, each merchant also gets a PostgreSQL role owning its schema only."""

    name: str
    url: str | None = attrs.field(default=None, repr=False)
    directory: Path | None = None
    roles: bool = False
    pool_size: int = 8

    @property
    def is_sqlite(self) -> bool:
        return self.directory is not None

    def describe(self) -> str:
        if self.directory is not None:
            return f"sqlite:{self.directory}"
        return mask_password(self.url or "")


@attrs.frozen
class MerchantEntry:
    id: str
    manifest: Path
    database: str
    status: MerchantStatus = MerchantStatus.ACTIVE

    @property
    def schema(self) -> str:
        """The PostgreSQL schema (and role) of this merchant."""
        return schema_name(self.id)


@attrs.frozen
class PointsProgramme:
    """The platform's points programme: each point is worth ``value`` (minor units of ``currency``) when
    spent at any merchant in ``merchants``; the merchant that issues a point pays that value to the
    platform, the merchant it is spent at is paid it."""

    name: str
    value: Money
    merchants: frozenset[str]


@attrs.frozen
class PlatformCoupon:
    """A coupon the platform pays for: ``value`` off an order at any merchant in ``merchants``, at most
    ``uses`` times across all of them together."""

    code: str
    value: Money
    uses: int
    merchants: frozenset[str]
    #: What a refund does to the platform's discount: ``keep`` (the platform pays whatever happens after the
    #: sale) or ``clawback`` (the merchant gives it back); cancelling always gives the use back.
    on_refund: str = "keep"


@attrs.frozen
class PlatformRights:
    """Rights the platform shares across its merchants (``rights:`` of ``platform.yaml``)."""

    points: PointsProgramme | None = None
    coupons: tuple[PlatformCoupon, ...] = ()

    def coupon(self, code: str) -> PlatformCoupon | None:
        wanted = code.strip().upper()
        return next((coupon for coupon in self.coupons if coupon.code == wanted), None)


@attrs.frozen
class PlatformManifest:
    path: Path
    id: str
    name: str
    databases: Mapping[str, DatabaseServer]
    merchants: tuple[MerchantEntry, ...]
    keys: tuple[ApiKey, ...] = ()
    rights: PlatformRights = PlatformRights()

    def merchant(self, merchant_id: str) -> MerchantEntry:
        for entry in self.merchants:
            if entry.id == merchant_id:
                return entry
        from retailblocks.errors import UnknownObject

        known = ", ".join(entry.id for entry in self.merchants) or "none"
        raise UnknownObject(f"{self.path}: no merchant {merchant_id!r} (merchants: {known})")

    @property
    def home(self) -> DatabaseServer:
        """The database that keeps the platform's own table (the merchants' live status): the first listed."""
        return next(iter(self.databases.values()))


def schema_name(merchant_id: str) -> str:
    return "m_" + merchant_id.replace("-", "_")


def is_platform_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a platform manifest (its document has a top-level ``platform:`` key), so one
    command can take either kind. A file that cannot be read is not one; loading it says why."""
    try:
        root = load_document(read_source(path), os.fspath(path), _ANY_ENV)
    except ManifestError:
        return False
    return root is not None and isinstance(root.value, dict) and "platform" in root.value


class _AnyEnvironment(dict[str, str]):
    """Every variable set (to nothing): telling the kind of a file needs no secret."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return ""


_ANY_ENV = _AnyEnvironment()


def load_platform(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> PlatformManifest:
    """Read and check ``platform.yaml``; :class:`ManifestError` for anything wrong, and nothing else."""
    file = os.fspath(path)
    env = os.environ if environ is None else environ
    try:
        return _parse(load_document(read_source(path), file, env), Path(file), file)
    except ManifestError:
        raise
    except RecursionError:
        raise ManifestError("the manifest is nested too deeply to read", file=file) from None
    except Exception as error:
        # A bug of ours still reaches the operator as one line; the text is left out (it could quote a secret).
        raise ManifestError(
            f"internal error while reading the platform manifest ({type(error).__name__}); please report it",
            file=file,
        ) from error


def _parse(root: Node | None, path: Path, file: str) -> PlatformManifest:
    if root is None:
        raise ManifestError(
            "the platform manifest is empty; it needs 'platform', 'databases' and 'merchants'", file=file
        )
    entries = readers.check_keys(root, _TOP_KEYS, ("platform", "databases", "merchants"))
    problems = ManifestProblems()
    identity = problems.attempt(lambda: _identity(entries["platform"]))
    databases = problems.attempt(lambda: _databases(entries["databases"], path.parent))
    merchants: tuple[MerchantEntry, ...] | None = None
    if databases is not None:
        known = databases
        merchants = problems.attempt(lambda: _merchants(entries["merchants"], known, path.parent))
    keys: tuple[ApiKey, ...] | None = ()
    if "api" in entries:
        keys = problems.attempt(lambda: _api(entries["api"]))
    rights: PlatformRights | None = PlatformRights()
    if "rights" in entries and merchants is not None:
        ids = [merchant.id for merchant in merchants]
        rights = problems.attempt(lambda: _rights(entries["rights"], ids))
    problems.raise_any()
    assert identity is not None and databases is not None and merchants is not None and keys is not None
    assert rights is not None
    return PlatformManifest(path, identity[0], identity[1], databases, merchants, keys, rights)


def _identity(node: Node) -> tuple[str, str]:
    entries = readers.check_keys(node, ("id", "name"), ("id", "name"))
    return readers.slug(entries["id"]), readers.string(entries["name"])


def _databases(node: Node, directory: Path) -> dict[str, DatabaseServer]:
    found: dict[str, DatabaseServer] = {}
    items = readers.mapping(node)
    if not items:
        raise ManifestError.at(node, "expected at least one database, like 'main: {url: ${DATABASE_URL}}'")
    for name, item in items.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
            raise ManifestError.at(node.key_position(name), f"a database name is a slug (got {name!r})")
        entries = readers.check_keys(item, ("url", "directory", "roles", "pool_size"))
        if ("url" in entries) == ("directory" in entries):
            raise ManifestError.at(
                item, f"database {name!r} needs either 'url' (PostgreSQL) or 'directory' (SQLite files), not both"
            )
        roles = False
        if "roles" in entries:
            if not isinstance(entries["roles"].value, bool):
                raise readers.mismatch(entries["roles"], "true or false")
            roles = entries["roles"].value
        pool_size = 8
        if "pool_size" in entries:
            pool_size = readers.integer(entries["pool_size"])
            if not 1 <= pool_size <= 200:
                raise ManifestError.at(entries["pool_size"], "expected 1 to 200 connections")
        if "directory" in entries:
            if roles:
                raise ManifestError.at(entries["roles"], "roles are PostgreSQL's; a SQLite directory has none")
            place = (directory / readers.string(entries["directory"])).resolve()
            found[name] = DatabaseServer(name, directory=place, pool_size=pool_size)
            continue
        url_node = entries["url"]
        url = readers.string(url_node).strip()
        if not url.startswith(("postgresql://", "postgresql+psycopg://")):
            shown = "the value from the environment" if url_node.from_environment else repr(mask_password(url))
            raise ManifestError.at(
                url_node,
                f"a database 'url' is PostgreSQL's, like 'postgresql://user@host/db' (got {shown}); "
                "for SQLite write 'directory: path/to/merchants'",
            )
        normalized = "postgresql+psycopg://" + url.split("://", 1)[1]
        try:
            parsed = sa.make_url(normalized)
        except sa.exc.ArgumentError:
            raise ManifestError.at(url_node, "invalid PostgreSQL URL") from None
        if not parsed.database:
            raise ManifestError.at(url_node, "the PostgreSQL URL names no database (add '/dbname')")
        found[name] = DatabaseServer(name, url=normalized, roles=roles, pool_size=pool_size)
    return found


def _merchants(node: Node, databases: Mapping[str, DatabaseServer], directory: Path) -> tuple[MerchantEntry, ...]:
    seen: dict[str, Node] = {}
    merchants: list[MerchantEntry] = []
    problems = ManifestProblems()

    def one(item: Node) -> MerchantEntry:
        entries = readers.check_keys(item, ("id", "manifest", "database", "status"), ("id", "manifest", "database"))
        merchant_id = readers.string(entries["id"])
        if not MERCHANT_ID.fullmatch(merchant_id):
            raise ManifestError.at(
                entries["id"],
                "a merchant id is lower-case letters, digits and '-', starting with a letter or digit, at most "
                f"40 characters (got {entries['id'].describe()})",
            )
        readers.unique(entries["id"], merchant_id, seen, "merchant id")
        database = readers.string(entries["database"])
        if database not in databases:
            hint = readers.suggestion(database, list(databases))
            raise ManifestError.at(
                entries["database"], f"unknown database {database!r}{hint} (declared: {', '.join(databases)})"
            )
        status = MerchantStatus.ACTIVE
        if "status" in entries:
            status = MerchantStatus(
                readers.choice(entries["status"], [MerchantStatus.ACTIVE.value, MerchantStatus.PAUSED.value])
            )
        manifest = (directory / readers.string(entries["manifest"])).resolve()
        return MerchantEntry(merchant_id, manifest, database, status)

    for item in readers.sequence(node):
        merchant = problems.attempt(lambda: one(item))  # noqa: B023 - called at once
        if merchant is not None:
            merchants.append(merchant)
    problems.raise_any()
    return tuple(merchants)


def _api(node: Node) -> tuple[ApiKey, ...]:
    entries = readers.check_keys(node, ("keys",))
    keys: list[ApiKey] = []
    seen: dict[str, Node] = {}
    for item in readers.sequence(entries["keys"]) if "keys" in entries else ():
        fields = readers.check_keys(item, ("id", "key", "scopes", "revoked"), ("id", "key", "scopes"))
        key_id = readers.slug(fields["id"])
        readers.unique(fields["id"], key_id, seen, "key id")
        scopes: list[str] = []
        for scope_node in readers.sequence(fields["scopes"], non_empty=True):
            scopes.append(readers.choice(scope_node, list(PLATFORM_SCOPES)))
        revoked = False
        if "revoked" in fields:
            if not isinstance(fields["revoked"].value, bool):
                raise readers.mismatch(fields["revoked"], "true or false")
            revoked = fields["revoked"].value
        keys.append(
            ApiKey(
                id=key_id, digest=secret_key_digest(fields["key"], key_id), scopes=frozenset(scopes), revoked=revoked
            )
        )
    return tuple(keys)


def _rights(node: Node, merchant_ids: list[str]) -> PlatformRights:
    entries = readers.check_keys(node, ("points", "coupons"))
    problems = ManifestProblems()
    points: PointsProgramme | None = None
    if "points" in entries:
        points = problems.attempt(lambda: _points(entries["points"], merchant_ids))
    coupons: list[PlatformCoupon] = []
    seen: dict[str, Node] = {}
    for item in readers.sequence(entries["coupons"]) if "coupons" in entries else ():
        coupon = problems.attempt(lambda: _coupon(item, merchant_ids, seen))  # noqa: B023 - called at once
        if coupon is not None:
            coupons.append(coupon)
    problems.raise_any()
    return PlatformRights(points, tuple(coupons))


def _positive_money(node: Node) -> Money:
    try:
        money = Money.parse(readers.string(node))
    except InvalidValue as error:
        raise ManifestError.at(node, str(error)) from None
    if money.amount <= 0:
        raise ManifestError.at(node, f"expected an amount above zero (got {money.format()})")
    return money


def _joined(node: Node, merchant_ids: list[str]) -> frozenset[str]:
    found: dict[str, Node] = {}
    for item in readers.sequence(node, non_empty=True):
        merchant_id = readers.string(item)
        if merchant_id not in merchant_ids:
            hint = readers.suggestion(merchant_id, merchant_ids)
            raise ManifestError.at(
                item, f"unknown merchant {merchant_id!r}{hint} (merchants: {', '.join(merchant_ids)})"
            )
        readers.unique(item, merchant_id, found, "merchant")
    return frozenset(found)


def _points(node: Node, merchant_ids: list[str]) -> PointsProgramme:
    entries = readers.check_keys(node, ("name", "value", "merchants"), ("name", "value", "merchants"))
    return PointsProgramme(
        readers.string(entries["name"]), _positive_money(entries["value"]), _joined(entries["merchants"], merchant_ids)
    )


def _coupon(node: Node, merchant_ids: list[str], seen: dict[str, Node]) -> PlatformCoupon:
    entries = readers.check_keys(
        node, ("code", "value", "uses", "merchants", "on_refund"), ("code", "value", "merchants")
    )
    code = readers.string(entries["code"])
    if not COUPON_CODE.fullmatch(code):
        raise ManifestError.at(
            entries["code"], f"a coupon code is 2 to 40 upper-case letters, digits and '-' (got {code!r})"
        )
    readers.unique(entries["code"], code, seen, "coupon code")
    uses = 1
    if "uses" in entries:
        uses = readers.integer(entries["uses"])
        if not 1 <= uses <= 10_000_000:
            raise ManifestError.at(entries["uses"], "expected 1 to 10,000,000 uses")
    on_refund = readers.choice(entries["on_refund"], ["keep", "clawback"]) if "on_refund" in entries else "keep"
    return PlatformCoupon(
        code, _positive_money(entries["value"]), uses, _joined(entries["merchants"], merchant_ids), on_refund
    )
