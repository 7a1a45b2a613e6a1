"""Loading ``blocks.yaml``: the manifest's schema, checked value by value, into a :class:`Manifest`.

Everything wrong with a manifest is reported as one :class:`ManifestError` naming the file, the line
and column, and the path inside the document (the independent problems of a manifest all at once, one
per line); nothing else escapes :func:`load_manifest`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from retailblocks.errors import InvalidValue
from retailblocks.manifest import readers
from retailblocks.manifest.api import ApiConfig, parse_api
from retailblocks.manifest.audience import parse_campaigns, parse_segments
from retailblocks.manifest.errors import ManifestError, ManifestProblems, SourcePosition
from retailblocks.manifest.model import (
    SUPPORTED_VERSION,
    BlockEntry,
    Campaign,
    Manifest,
    Partner,
    PartnerType,
    RefundPolicy,
    Routing,
    Segment,
    mask_password,
)
from retailblocks.manifest.nodes import Node
from retailblocks.manifest.stacking import MarketingStacking, parse_marketing_stacking
from retailblocks.manifest.units import parse_weight
from retailblocks.manifest.webhooks import Webhook, parse_webhooks
from retailblocks.manifest.yamlsource import load_document, read_source
from retailblocks.model import Channel, ChannelType, Merchant, Money, Product
from retailblocks.model._validators import SLUG
from retailblocks.model.limits import check_quantity

_TOP_KEYS = (
    "version",
    "merchant",
    "database",
    "channels",
    "catalog",
    "blocks",
    "routing",
    "partners",
    "segments",
    "campaigns",
    "api",
    "webhooks",
)
_REQUIRED_TOP_KEYS = ("version", "merchant", "channels", "blocks")
T = TypeVar("T")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Entry-point names are looser than slugs (dots happen); instance ids are slugs.
_BLOCK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SUPPORTED_DATABASES = (
    "supported: 'sqlite:///relative/or/absolute/path.db' or 'postgresql+psycopg://user@host/db' "
    "('postgresql://' means the same)"
)


def load_manifest(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Manifest:
    """Read, check and build the manifest at ``path``, interpolating ``${VAR}`` from ``environ``.

    ``environ`` defaults to :data:`os.environ`. Relative SQLite paths are taken relative to the
    manifest's directory. Raises :class:`ManifestError` for anything wrong, and nothing else.
    """
    file = os.fspath(path)
    return _guarded(file, lambda: _parse(read_source(path), file, environ))


def parse_manifest(
    data: bytes | str,
    *,
    path: str | os.PathLike[str] = "blocks.yaml",
    environ: Mapping[str, str] | None = None,
) -> Manifest:
    """Like :func:`load_manifest` for a manifest already in memory; ``path`` names it in messages
    and its directory anchors relative SQLite paths."""
    file = os.fspath(path)
    return _guarded(file, lambda: _parse(data, file, environ))


def _guarded(file: str, load: Callable[[], Manifest]) -> Manifest:
    try:
        return load()
    except ManifestError:
        raise
    except RecursionError:
        raise ManifestError("the manifest is nested too deeply to read", file=file) from None
    except Exception as error:
        # A bug of ours must still reach the merchant as one line, not a traceback; the
        # message leaves
        # the exception's text out because it could quote a secret.
        raise ManifestError(
            f"internal error while reading the manifest ({type(error).__name__}); please report it",
            file=file,
        ) from error


def _parse(data: bytes | str, file: str, environ: Mapping[str, str] | None) -> Manifest:
    root = load_document(data, file, os.environ if environ is None else environ)
    if root is None:
        raise ManifestError(
            "the manifest is empty; it needs at least 'version', 'merchant', 'channels' and 'blocks'",
            file=file,
        )
    if not root.is_mapping:
        raise ManifestError.at(
            root,
            f"a manifest is a mapping of keys like 'version' and 'blocks' (got {root.describe()})",
        )
    entries = readers.mapping(root)
    # The version decides what every other key means, so it is checked before them.
    if "version" not in entries:
        raise ManifestError.at(root, f"missing required key 'version' (write 'version: {SUPPORTED_VERSION}')")
    version = _version(entries["version"])
    readers.check_keys(root, _TOP_KEYS, _REQUIRED_TOP_KEYS)

    # Every part that can be checked on its own is, and all their problems are reported together; a part
    # that needs another (prices need the merchant's currency) waits for that one to be right.
    problems = ManifestProblems()
    merchant = problems.attempt(lambda: _merchant(entries["merchant"]))
    manifest_path = Path(os.path.abspath(file))
    # The merchant's id only names the default database, so a written one is checked regardless.
    merchant_id = merchant.id if merchant is not None else ""
    database = problems.attempt(lambda: _database(entries.get("database"), merchant_id, manifest_path.parent))
    channels = problems.attempt(lambda: _channels(entries["channels"]))
    channel_ids = [channel.id for channel in channels or ()]
    catalog: tuple[Product, ...] | None = ()
    if "catalog" in entries and merchant is not None and channels is not None:
        catalog = problems.attempt(lambda: _catalog(entries["catalog"], merchant.currency, channel_ids))
    blocks = problems.attempt(lambda: _blocks(entries["blocks"]))
    routing: Routing | None = Routing()
    if "routing" in entries and blocks is not None:
        routing = problems.attempt(lambda: _routing(entries["routing"], [b.id for b in blocks]))
    partners: tuple[Partner, ...] | None = ()
    if "partners" in entries and merchant is not None:
        partners = problems.attempt(lambda: _partners(entries["partners"], merchant.id))
    if channels is not None and partners is not None:
        settling, known_partners = channels, partners
        problems.attempt(lambda: _check_settlement_partners(entries["channels"], settling, known_partners))
    segments: tuple[Segment, ...] | None = ()
    if "segments" in entries and merchant is not None and channels is not None and catalog is not None:
        known = catalog
        segments = problems.attempt(lambda: parse_segments(entries["segments"], merchant.currency, channel_ids, known))
    campaigns: tuple[Campaign, ...] | None = ()
    if "campaigns" in entries and channels is not None and segments is not None:
        segment_ids = [s.id for s in segments]
        campaigns = problems.attempt(lambda: parse_campaigns(entries["campaigns"], segment_ids, channel_ids))
    api: ApiConfig | None = ApiConfig()
    if "api" in entries and channels is not None:
        api = problems.attempt(lambda: parse_api(entries["api"], channel_ids))
    webhooks: tuple[Webhook, ...] | None = ()
    if "webhooks" in entries:
        webhooks = problems.attempt(lambda: parse_webhooks(entries["webhooks"]))
    problems.raise_any()
    # Without a problem every part was read (raise_any raised otherwise): the checks say so to mypy.
    assert merchant is not None and database is not None and channels is not None and blocks is not None
    assert catalog is not None and routing is not None and partners is not None and segments is not None
    assert campaigns is not None and api is not None and webhooks is not None
    return Manifest(
        path=manifest_path,
        version=version,
        merchant=merchant,
        database_url=database,
        channels=channels,
        catalog=catalog,
        blocks=blocks,
        routing=routing,
        partners=partners,
        segments=segments,
        campaigns=campaigns,
        api=api,
        webhooks=webhooks,
        source=root,
    )


def _version(node: Node) -> int:
    version = readers.integer(node)
    if version != SUPPORTED_VERSION:
        raise ManifestError.at(
            node,
            f"unsupported manifest version {version}; this retailblocks reads version {SUPPORTED_VERSION}",
        )
    return version


def _merchant(node: Node) -> Merchant:
    entries = readers.check_keys(node, ("id", "name", "currency"), ("id", "name", "currency"))
    currency_node = entries["currency"]
    currency = readers.string(currency_node)
    if not _CURRENCY.fullmatch(currency):
        raise ManifestError.at(
            currency_node,
            f"expected an ISO 4217 currency code of three capital letters, like 'CNY' (got {currency_node.describe()})",
        )
    return Merchant(id=readers.slug(entries["id"]), name=readers.string(entries["name"]), currency=currency)


def _database(node: Node | None, merchant_id: str, directory: Path) -> str:
    if node is None:
        return f"sqlite:///{directory / '.blocks' / f'{merchant_id}.db'}"
    url = readers.string(node).strip()
    shown = repr(mask_password(url))
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        normalized = "postgresql+psycopg://" + url.split("://", 1)[1]
        problem = _postgres_problem(normalized)
        if problem:
            raise ManifestError.at(node, f"invalid PostgreSQL URL {shown}: {problem}")
        return normalized
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///"):
            raise ManifestError.at(
                node,
                f"a SQLite URL has three slashes, like 'sqlite:///.blocks/shop.db' (got {shown})",
            )
        location, query = url.removeprefix("sqlite:///"), ""
        if "?" in location:
            location, query = location.split("?", 1)
            query = "?" + query
        if location in ("", ":memory:") or "mode=memory" in query:
            raise ManifestError.at(
                node,
                "an in-memory SQLite database cannot be used: "
                "the blocks of a stack share one database; "
                "give a file, like 'sqlite:///.blocks/shop.db'",
            )
        file = (directory / location).resolve()
        return f"sqlite:///{file}{query}"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    hint = " (write 'postgresql://')" if scheme == "postgres" else ""
    raise ManifestError.at(node, f"unsupported database URL {shown}{hint}; {_SUPPORTED_DATABASES}")


def _postgres_problem(url: str) -> str | None:
    """What is wrong with a PostgreSQL URL that can be told without connecting, or None."""
    import sqlalchemy as sa

    try:
        parsed = sa.make_url(url)
        port = parsed.port
    except (sa.exc.ArgumentError, ValueError) as error:
        return str(error).split("\n")[0] or "it cannot be parsed"
    if port is not None and not 0 < port < 65536:
        return f"port {port} is out of range (1–65535)"
    if not parsed.database:
        return "it names no database (…/<database> at the end)"
    return None


def _channels(node: Node) -> tuple[Channel, ...]:
    seen: dict[str, Node] = {}
    types = [kind.value for kind in ChannelType]

    def channel(item: Node) -> Channel:
        entries = readers.check_keys(item, ("id", "type", "location", "name", "settles_with"), ("id", "type"))
        channel_id = readers.slug(entries["id"])
        readers.unique(entries["id"], channel_id, seen, "channel id")
        kind = ChannelType(readers.choice(entries["type"], types))
        location = readers.string(entries["location"]) if "location" in entries else None
        if kind is ChannelType.STORE and location is None:
            raise ManifestError.at(item, "a store channel needs 'location': the stock location the store sells from")
        name = readers.string(entries["name"]) if "name" in entries else None
        settles_with = None
        if "settles_with" in entries:
            if kind is not ChannelType.MARKETPLACE:
                raise ManifestError.at(
                    entries["settles_with"],
                    "only a marketplace channel has 'settles_with' (the partner that collects its orders' money)",
                )
            settles_with = readers.slug(entries["settles_with"])
        return Channel(id=channel_id, type=kind, location=location, name=name, settles_with=settles_with)

    return _each(readers.sequence(node, non_empty=True), channel)


_PRODUCT_KEYS = ("sku", "title", "price", "category", "weight", "channels", "channel_prices")


def _catalog(node: Node, currency: str, channel_ids: list[str]) -> tuple[Product, ...]:
    seen: dict[str, Node] = {}

    def product(item: Node) -> Product:
        entries = readers.check_keys(item, _PRODUCT_KEYS, ("sku", "title", "price"))
        sku = readers.string(entries["sku"])
        readers.unique(entries["sku"], sku, seen, "sku")
        weight = 0
        if "weight" in entries:
            weight_node = entries["weight"]
            try:
                weight = check_quantity(parse_weight(weight_node.value), "a weight in grams")
            except InvalidValue as error:
                raise ManifestError.at(weight_node, str(error)) from None
        sold_in: list[str] = []
        if "channels" in entries:
            sold_in = [readers.channel_ref(ref, channel_ids) for ref in readers.sequence(entries["channels"])]
        prices: dict[str, Money] = {}
        if "channel_prices" in entries:
            prices_node = entries["channel_prices"]
            for key, price_node in readers.mapping(prices_node).items():
                channel_id = readers.channel_ref(Node(key, prices_node.key_position(key)), channel_ids)
                prices[channel_id] = readers.money(price_node, currency)
        try:
            return Product(
                sku=sku,
                title=readers.string(entries["title"]),
                price=readers.money(entries["price"], currency),
                category=readers.string(entries["category"]) if "category" in entries else "general",
                weight_grams=weight,
                channel_prices=prices,
                # mypy's attrs plugin leaves frozenset's type variable unbound for this converter.
                channels=sold_in,  # type: ignore[arg-type]
            )
        except InvalidValue as error:
            raise ManifestError.at(item, str(error)) from None

    return _each(readers.sequence(node), product)


def _specifier(node: Node) -> SpecifierSet:
    text = readers.string(node)
    try:
        specifier = SpecifierSet(text)
    except InvalidSpecifier:
        hint = ""
        try:
            Version(text.strip())
            hint = f"; to pin a version write '=={text.strip()}'"
        except InvalidVersion:
            pass
        raise ManifestError.at(
            node,
            f"invalid version specifier {node.describe()}: expected PEP 440 specifiers like '>=0.1,<1'{hint}",
        ) from None
    if not _satisfiable(specifier):
        raise ManifestError.at(node, f"version specifier {text!r} matches no version at all")
    return specifier


def _satisfiable(specifier: SpecifierSet) -> bool:
    """False when the clauses obviously exclude each other (``>=2,<1``, ``==1.0,!=1.0``).

    Not a full solver: it compares the tightest lower and upper bounds and checks exact pins against
    every clause, which catches the contradictions people actually type.
    """
    lower: tuple[Version, bool] | None = None  # (bound, inclusive)
    upper: tuple[Version, bool] | None = None
    for clause in specifier:
        if clause.version.endswith(".*"):
            continue
        try:
            bound = Version(clause.version)
        except InvalidVersion:
            continue
        if clause.operator in ("==", "==="):
            if not specifier.contains(bound, prereleases=True):
                return False
        elif clause.operator in (">=", ">"):
            inclusive = clause.operator == ">="
            if lower is None or bound > lower[0] or (bound == lower[0] and not inclusive):
                lower = (bound, inclusive)
        elif clause.operator in ("<=", "<"):
            inclusive = clause.operator == "<="
            if upper is None or bound < upper[0] or (bound == upper[0] and not inclusive):
                upper = (bound, inclusive)
    if lower is None or upper is None:
        return True
    if lower[0] == upper[0]:
        return lower[1] and upper[1]
    return lower[0] < upper[0]


def _blocks(node: Node) -> tuple[BlockEntry, ...]:
    seen: dict[str, Node] = {}

    def block(item: Node) -> BlockEntry:
        entries = readers.check_keys(item, ("use", "id", "version", "config"), ("use",))
        use_node = entries["use"]
        use = readers.string(use_node)
        if not _BLOCK_NAME.fullmatch(use):
            raise ManifestError.at(use_node, f"expected a block's entry-point name (got {use_node.describe()})")
        if "id" in entries:
            id_node = entries["id"]
            block_id = readers.slug(id_node)
        else:
            id_node, block_id = use_node, use
            if not SLUG.fullmatch(use):
                raise ManifestError.at(use_node, f"{use!r} cannot serve as the block's id; add an 'id:' that is a slug")
        readers.unique(id_node, block_id, seen, "block id")
        version = _specifier(entries["version"]) if "version" in entries else None
        config = entries.get("config")
        if config is None or config.value is None:
            # An omitted (or emptied) config is an empty mapping, placed where it would have been.
            where = item.key_position("config") if config is None else config.position
            config = Node({}, where)
        else:
            readers.mapping(config)
        return BlockEntry(
            use=use,
            id=block_id,
            version=version,
            config=config,
            position=item.position,
            doc_path=item.doc_path,
            key_positions={
                # A scalar is best pointed at where its value is written;
                # a collection at its key.
                key: value.position if value.is_scalar else item.key_position(key)
                for key, value in entries.items()
            },
        )

    return _each(readers.sequence(node, non_empty=True), block)


def _each(items: Sequence[Node], read: Callable[[Node], T]) -> tuple[T, ...]:
    """``read`` of every item of a list, the items being independent: the problems of all are reported."""
    problems = ManifestProblems()
    results = [problems.attempt(partial(read, item)) for item in items]
    problems.raise_any()
    return tuple(result for result in results if result is not None)


def _routing(node: Node, block_ids: list[str]) -> Routing:
    entries = readers.check_keys(node, ("payment", "marketing"))
    marketing = MarketingStacking()
    if "marketing" in entries:
        marketing = parse_marketing_stacking(entries["marketing"], block_ids)
    if "payment" not in entries:
        return Routing(marketing=marketing)
    payment_node = entries["payment"]
    routes: dict[str, str] = {}
    positions: dict[str, SourcePosition] = {}
    for method, target in readers.mapping(payment_node).items():
        if not method.strip():
            raise ManifestError.at(payment_node.key_position(method), "a payment method name is empty")
        block_id = readers.string(target)
        if block_id not in block_ids:
            raise ManifestError.at(
                target,
                f"no block with id {block_id!r}{readers.suggestion(block_id, block_ids)} "
                f"(blocks: {', '.join(block_ids)})",
            )
        routes[method] = block_id
        positions[method] = target.position
    return Routing(payment=routes, marketing=marketing, positions=positions)


def _check_settlement_partners(node: Node, channels: tuple[Channel, ...], partners: tuple[Partner, ...]) -> None:
    """A marketplace channel settles with a partner the manifest declares."""
    partner_ids = [p.id for p in partners]
    for item, channel in zip(readers.sequence(node), channels, strict=True):
        if channel.settles_with is not None and channel.settles_with not in partner_ids:
            declared = ", ".join(partner_ids) or "none; declare it under 'partners:'"
            raise ManifestError.at(
                readers.check_keys(item, ("id", "type", "location", "name", "settles_with"), ())["settles_with"],
                f"unknown partner {channel.settles_with!r}{readers.suggestion(channel.settles_with, partner_ids)} "
                f"(the manifest's partners: {declared})",
            )


def _partners(node: Node, merchant_id: str) -> tuple[Partner, ...]:
    seen: dict[str, Node] = {}
    partners: list[Partner] = []
    types = [kind.value for kind in PartnerType]
    policies = [policy.value for policy in RefundPolicy]
    for item in readers.sequence(node):
        entries = readers.check_keys(item, ("id", "name", "type", "on_refund"), ("id", "name", "type"))
        partner_id = readers.slug(entries["id"])
        if partner_id == merchant_id:
            raise ManifestError.at(entries["id"], "a partner cannot have the merchant's own id")
        readers.unique(entries["id"], partner_id, seen, "partner id")
        partners.append(
            Partner(
                id=partner_id,
                name=readers.string(entries["name"]),
                type=PartnerType(readers.choice(entries["type"], types)),
                on_refund=RefundPolicy(readers.choice(entries["on_refund"], policies))
                if "on_refund" in entries
                else RefundPolicy.KEEP,
            )
        )
    return tuple(partners)
