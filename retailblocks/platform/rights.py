"""Rights the platform shares across its merchants: a points programme and platform-funded coupons.

Their state is the platform's, not any merchant's: member accounts (keyed by a platform identity), the
platform's ledger of every earn, spend, coupon redemption and release, and each coupon's use count live in
the platform's own schema (``rb_platform``) or its own SQLite file (``_platform.db``). A merchant reaches
them only through this module's functions, which take the merchant's id and never open another merchant's
schema or file.

For a merchant the platform is a partner (id ``platform``): every ledger entry says what the platform owes
that merchant (positive) or the merchant owes the platform (negative), in minor units —

- points earned at a merchant: the merchant pays the platform the points' value (``-points × value``);
- points spent at a merchant: the platform pays the merchant the points' value (``+points × value``);
- a platform coupon redeemed at a merchant: the platform pays the discount (``+value``); cancelled, the
  use is released and the line reversed; refunded, the coupon's ``on_refund`` decides (``keep`` — the
  default, as for partners — or ``clawback``, which reverses the line but does not give the use back).

Every operation is one transaction, idempotent per (merchant, key): replaying a key answers the entry it
made, and the same key with a different request is :class:`~retailblocks.errors.IdempotencyConflict`.
Limits hold under concurrency without locks held across statements: spending is a conditional
``UPDATE … SET balance = balance - n WHERE balance >= n`` and a coupon use a conditional ``UPDATE … SET
used = used + 1 WHERE used < uses``, so of two merchants racing for a coupon's last use exactly one wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

import attrs
import sqlalchemy as sa

from retailblocks.clock import Clock, SystemClock
from retailblocks.errors import BusinessRejection, IdempotencyConflict, InvalidInput, PromotionRejected, UnknownObject
from retailblocks.model import Money
from retailblocks.platform.manifest import PLATFORM_PARTNER, PlatformCoupon, PlatformManifest, PointsProgramme
from retailblocks.platform.registry import SCHEMA, on_home

_metadata = sa.MetaData()
#: What an operation changes besides its ledger entry, in the entry's transaction.
_Apply = Callable[[sa.Connection, datetime], None]

#: A platform member's points balance: never below zero.
accounts = sa.Table(
    "point_accounts",
    _metadata,
    sa.Column("member", sa.String(128), primary_key=True),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("balance >= 0", name="point_accounts_balance_not_negative"),
    schema=SCHEMA,
)

#: How many times each platform coupon was used, across every merchant.
coupon_uses = sa.Table(
    "coupon_uses",
    _metadata,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("used", sa.Integer, nullable=False),
    schema=SCHEMA,
)

#: The platform's ledger with its merchants: what the platform owes each merchant (``amount`` > 0) or is
#: owed by it (< 0). Entries are only ever added; a reversal is an entry of its own, dated when it happened.
entries = sa.Table(
    "rights_ledger",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("merchant", sa.String(64), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    sa.Column("member", sa.String(128), nullable=True),
    sa.Column("code", sa.String(40), nullable=True),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("reference", sa.String(200), nullable=False),
    #: For a reversal: the key of the entry it reverses (so it is reversed once).
    sa.Column("reverses", sa.String(200), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("merchant", "key", name="rights_ledger_merchant_key"),
    sa.UniqueConstraint("merchant", "reverses", name="rights_ledger_reversed_once"),
    schema=SCHEMA,
)
sa.Index("rights_ledger_at", entries.c.at)

EARN = "points_earned"
SPEND = "points_spent"
COUPON = "coupon_redeemed"
COUPON_RELEASED = "coupon_released"
COUPON_CLAWBACK = "coupon_clawback"
EARN_REVERSED = "points_earned_reversed"
SPEND_REVERSED = "points_spent_reversed"
MAX_POINTS = 10**12


def create(engine: sa.Engine) -> None:
    """Create the rights tables in the platform's schema or file (idempotent; safe to race)."""
    with on_home(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('rb_platform'))"))
        _metadata.create_all(connection, checkfirst=True)


@attrs.frozen
class Entry:
    """One line of the platform's ledger with a merchant."""

    merchant: str
    key: str
    kind: str
    member: str | None
    code: str | None
    points: int
    amount: Money
    reference: str
    at: datetime
    partner: str = PLATFORM_PARTNER


@attrs.frozen
class Balance:
    member: str
    points: int
    value: Money


def _entry(row: sa.Row[tuple[object, ...]]) -> Entry:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return Entry(
        row.merchant,
        row.key,
        row.kind,
        row.member,
        row.code,
        int(row.points),
        Money(int(row.amount), row.currency),
        row.reference,
        at,
    )


class SharedRights:
    """The platform's shared rights on its home database."""

    def __init__(self, manifest: PlatformManifest, home: sa.Engine, clock: Clock | None = None):
        self.manifest = manifest
        self.engine = on_home(home)
        self.clock = clock or SystemClock()
        create(home)

    # -- checks -------------------------------------------------------------------------------------------

    def programme(self, merchant: str) -> PointsProgramme:
        self.manifest.merchant(merchant)
        points = self.manifest.rights.points
        if points is None:
            raise UnknownObject(f"{self.manifest.path}: the platform has no points programme (rights: points:)")
        if merchant not in points.merchants:
            raise BusinessRejection(
                f"merchant {merchant!r} has not joined the platform's points programme {points.name!r} "
                f"(joined: {', '.join(sorted(points.merchants))})"
            )
        return points

    def coupon(self, merchant: str, code: str) -> PlatformCoupon:
        self.manifest.merchant(merchant)
        coupon = self.manifest.rights.coupon(code)
        if coupon is None:
            raise PromotionRejected(f"{code.strip().upper()!r} is not a platform coupon")
        if merchant not in coupon.merchants:
            raise PromotionRejected(
                f"platform coupon {coupon.code} is not valid at merchant {merchant!r}: the platform funds it at "
                f"{', '.join(sorted(coupon.merchants))} only"
            )
        return coupon

    # -- points ---------------------------------------------------------------------------------------------

    def earn(self, merchant: str, member: str, points: int, *, reference: str, key: str) -> Entry:
        """``member`` earns ``points`` at ``merchant``, which pays the platform their value."""
        programme = self.programme(merchant)
        _check_points(points)
        member = _member(member)
        amount = -programme.value.amount * points

        def apply(connection: sa.Connection, at: datetime) -> None:
            changed = connection.execute(
                accounts.update()
                .where(accounts.c.member == member)
                .values(balance=accounts.c.balance + points, updated_at=at)
            ).rowcount
            if not changed:
                connection.execute(accounts.insert().values(member=member, balance=points, updated_at=at))

        return self._record(
            merchant, key, EARN, member, None, points, amount, programme.value.currency, reference, apply
        )

    def spend(self, merchant: str, member: str, points: int, *, reference: str, key: str) -> Entry:
        """``member`` spends ``points`` at ``merchant``; the platform pays the merchant their value. Refused,
        with nothing moved, when the member's balance is short."""
        programme = self.programme(merchant)
        _check_points(points)
        member = _member(member)
        amount = programme.value.amount * points

        def apply(connection: sa.Connection, at: datetime) -> None:
            changed = connection.execute(
                accounts.update()
                .where(accounts.c.member == member, accounts.c.balance >= points)
                .values(balance=accounts.c.balance - points, updated_at=at)
            ).rowcount
            if not changed:
                have = connection.execute(sa.select(accounts.c.balance).where(accounts.c.member == member)).scalar()
                raise BusinessRejection(
                    f"member {member!r} has {int(have or 0)} {programme.name} points, not the {points} to spend"
                )

        return self._record(
            merchant, key, SPEND, member, None, points, amount, programme.value.currency, reference, apply
        )

    def reverse_points(self, merchant: str, key: str) -> Entry:
        """Undo the earn or spend made with ``key`` at ``merchant`` (its order was cancelled or returned):
        points spent go back to the member and the platform no longer pays for them; points earned are taken
        back — refused, with nothing moved, when the member has spent them since. Reversed once."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(entries).where(
                    entries.c.merchant == merchant, entries.c.key == key, entries.c.kind.in_((EARN, SPEND))
                )
            ).first()
            connection.rollback()
        if row is None:
            raise UnknownObject(f"merchant {merchant!r} has no platform points earned or spent with key {key!r}")
        original = _entry(row)
        member, points = original.member or "", original.points
        taking_back = original.kind == EARN

        def apply(connection: sa.Connection, at: datetime) -> None:
            if taking_back:
                changed = connection.execute(
                    accounts.update()
                    .where(accounts.c.member == member, accounts.c.balance >= points)
                    .values(balance=accounts.c.balance - points, updated_at=at)
                ).rowcount
                if not changed:
                    raise BusinessRejection(
                        f"member {member!r} has spent the {points} points earned with {key!r} since; they cannot "
                        "be taken back"
                    )
            else:
                connection.execute(
                    accounts.update()
                    .where(accounts.c.member == member)
                    .values(balance=accounts.c.balance + points, updated_at=at)
                )

        kind = EARN_REVERSED if taking_back else SPEND_REVERSED
        return self._record(merchant, f"{key}/{kind}", kind, member, None, points, -original.amount.amount,
                            original.amount.currency, original.reference, apply, reverses=key)  # fmt: skip

    def balance(self, member: str) -> Balance:
        points = self.manifest.rights.points
        if points is None:
            raise UnknownObject(f"{self.manifest.path}: the platform has no points programme (rights: points:)")
        with self.engine.connect() as connection:
            found = connection.execute(
                sa.select(accounts.c.balance).where(accounts.c.member == _member(member))
            ).scalar()
            connection.rollback()
        have = int(found or 0)
        return Balance(member, have, Money(have * points.value.amount, points.value.currency))

    # -- coupons --------------------------------------------------------------------------------------------

    def redeem_coupon(self, merchant: str, code: str, *, reference: str, key: str) -> Entry:
        """Use platform coupon ``code`` on an order (``reference``) at ``merchant``: one of its ``uses``
        across all merchants; the platform pays the discount."""
        coupon = self.coupon(merchant, code)

        def apply(connection: sa.Connection, at: datetime) -> None:
            taken = connection.execute(
                coupon_uses.update()
                .where(coupon_uses.c.code == coupon.code, coupon_uses.c.used < coupon.uses)
                .values(used=coupon_uses.c.used + 1)
            ).rowcount
            if taken:
                return
            exists = connection.execute(sa.select(coupon_uses.c.used).where(coupon_uses.c.code == coupon.code)).scalar()
            if exists is None:
                # The first use ever: the row is created by whoever gets there first; a racer that loses the
                # insert retries (the unique key makes it an IntegrityError, handled by _record's retry).
                connection.execute(coupon_uses.insert().values(code=coupon.code, used=1))
                return
            raise PromotionRejected(
                f"platform coupon {coupon.code} has been used {'once' if coupon.uses == 1 else f'{coupon.uses} times'}"
                ", its limit across all merchants"
            )

        return self._record(
            merchant, key, COUPON, None, coupon.code, 0, coupon.value.amount, coupon.value.currency, reference, apply
        )

    def release_coupon(self, merchant: str, key: str, *, refund: bool = False) -> Entry | None:
        """Undo the redemption made with ``key`` at ``merchant``: cancelled, its use is given back and its
        line reversed; refunded, the coupon's ``on_refund`` decides (``keep``: nothing changes, None).
        Idempotent: a redemption is reversed once."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(entries).where(entries.c.merchant == merchant, entries.c.key == key, entries.c.kind == COUPON)
            ).first()
            connection.rollback()
        if row is None:
            raise UnknownObject(f"merchant {merchant!r} redeemed no platform coupon with key {key!r}")
        original = _entry(row)
        coupon = self.manifest.rights.coupon(original.code or "")
        on_refund = coupon.on_refund if coupon is not None else "keep"
        if refund and on_refund == "keep":
            return None
        kind = COUPON_CLAWBACK if refund else COUPON_RELEASED

        def apply(connection: sa.Connection, at: datetime) -> None:
            if not refund:
                connection.execute(
                    coupon_uses.update()
                    .where(coupon_uses.c.code == original.code, coupon_uses.c.used > 0)
                    .values(used=coupon_uses.c.used - 1)
                )

        return self._record(
            merchant,
            f"{key}/{kind}",
            kind,
            None,
            original.code,
            0,
            -original.amount.amount,
            original.amount.currency,
            original.reference,
            apply,
            reverses=key,
        )

    # -- the ledger -------------------------------------------------------------------------------------------

    def _record(
        self,
        merchant: str,
        key: str,
        kind: str,
        member: str | None,
        code: str | None,
        points: int,
        amount: int,
        currency: str,
        reference: str,
        apply: _Apply,
        *,
        reverses: str | None = None,
    ) -> Entry:
        if not key or len(key) > 200:
            raise InvalidInput("an idempotency key is 1 to 200 characters")
        if not reference or len(reference) > 200:
            raise InvalidInput("a reference (the merchant's order) is 1 to 200 characters")
        wanted = (kind, member, code, points, amount, currency, reference)
        for _attempt in range(3):
            found = self._find(merchant, key, reverses)
            if found is not None:
                return _same(found, wanted, key)
            at = self.clock.now()
            try:
                with self.engine.begin() as connection:
                    apply(connection, at)
                    connection.execute(
                        entries.insert().values(
                            merchant=merchant,
                            key=key,
                            kind=kind,
                            member=member,
                            code=code,
                            points=points,
                            amount=amount,
                            currency=currency,
                            reference=reference,
                            reverses=reverses,
                            at=at,
                        )
                    )
            except sa.exc.IntegrityError:
                # Another request with this key (or a racer creating the same counter row) committed first:
                # look again.
                continue
            return Entry(merchant, key, kind, member, code, points, Money(amount, currency), reference, at)
        found = self._find(merchant, key, reverses)
        if found is not None:
            return _same(found, wanted, key)
        raise IdempotencyConflict(f"key {key!r} of merchant {merchant!r} is contended; try again")

    def _find(self, merchant: str, key: str, reverses: str | None) -> Entry | None:
        condition = entries.c.key == key if reverses is None else entries.c.reverses == reverses
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(entries).where(entries.c.merchant == merchant, condition)).first()
            connection.rollback()
        return None if row is None else _entry(row)

    def ledger(self, start: datetime, end: datetime, merchant: str | None = None) -> list[Entry]:
        """The platform's ledger entries in ``[start, end)``, oldest first (one merchant's, or all)."""
        query = sa.select(entries).where(entries.c.at >= start, entries.c.at < end)
        if merchant is not None:
            query = query.where(entries.c.merchant == merchant)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(entries.c.at, entries.c.id)).all()
            connection.rollback()
        return [_entry(row) for row in rows]

    def ledger_totals(self, start: datetime, end: datetime, merchants: Sequence[str] | None = None) -> dict[str, int]:
        """Σ ``amount`` per currency of the platform's ledger over ``[start, end)`` (for ``merchants``, or
        all), summed by the database."""
        query = sa.select(entries.c.currency, sa.func.sum(entries.c.amount)).where(
            entries.c.at >= start, entries.c.at < end
        )
        if merchants is not None:
            query = query.where(entries.c.merchant.in_(list(merchants)))
        with self.engine.connect() as connection:
            rows = connection.execute(query.group_by(entries.c.currency)).all()
            connection.rollback()
        return {str(row[0]): int(row[1]) for row in rows}


def _same(found: Entry, wanted: tuple[object, ...], key: str) -> Entry:
    have = (
        found.kind,
        found.member,
        found.code,
        found.points,
        found.amount.amount,
        found.amount.currency,
        found.reference,
    )
    if have != wanted:
        raise IdempotencyConflict(f"key {key!r} was used for another request ({found.kind} {found.reference})")
    return found


def _check_points(points: int) -> None:
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_POINTS:
        raise InvalidInput(f"points are a whole number from 1 to {MAX_POINTS} (got {points!r})")


def _member(member: str) -> str:
    member = member.strip() if isinstance(member, str) else ""
    if not member or len(member) > 128:
        raise InvalidInput("a platform member is identified by 1 to 128 characters (the platform identity)")
    return member


# -- settlement ---------------------------------------------------------------------------------------------


@attrs.frozen
class Statement:
    """What the platform owes one merchant (``total`` > 0) or is owed by it over a period, line by line."""

    merchant: str
    partner: str
    start: date
    end: date
    currency: str
    lines: tuple[Entry, ...]
    total: Money
    earned_points: int
    spent_points: int
    #: Σ of the merchant's own ledger with partner ``platform`` over the period (its orders' discounts the
    #: platform funded, less clawbacks: ``blocks settle --partner platform`` of the merchant), when the
    #: merchant declares the partner; None when it was not read.
    merchant_ledger: Money | None = None

    @property
    def coupons(self) -> Money:
        """The statement's coupon lines (redeemed, released, clawed back): what the merchant's ledger bills."""
        kinds = (COUPON, COUPON_RELEASED, COUPON_CLAWBACK)
        return Money(sum(line.amount.amount for line in self.lines if line.kind in kinds), self.currency)

    @property
    def reconciled(self) -> bool | None:
        """Whether the merchant's own ledger bills the platform exactly the coupons the platform's ledger
        says it funded there (None when the merchant's ledger was not read)."""
        return None if self.merchant_ledger is None else self.merchant_ledger == self.coupons


@attrs.frozen
class Settlement:
    """Every merchant's statement with the platform for a period; ``ledger_total`` is Σ of the platform's
    ledger over the period per currency, summed by the database, which equals Σ of the statements' totals."""

    platform: str
    start: date
    end: date
    statements: tuple[Statement, ...]
    ledger_total: dict[str, int]

    @property
    def balanced(self) -> bool:
        summed: dict[str, int] = {}
        for statement in self.statements:
            summed[statement.currency] = summed.get(statement.currency, 0) + statement.total.amount
        return {c: a for c, a in summed.items() if a} == {c: a for c, a in self.ledger_total.items() if a}


def period(start: date, end: date) -> tuple[datetime, datetime]:
    """``[start, end]`` in whole UTC days as ``[from, to)`` instants."""
    if end < start:
        raise InvalidInput(f"the period ends ({end}) before it starts ({start})")
    return (
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
    )


def settle(
    rights: SharedRights,
    start: date,
    end: date,
    merchants: Iterable[str] | None = None,
    *,
    currencies: Mapping[str, str] | None = None,
) -> Settlement:
    """Each merchant's statement with the platform over ``[start, end]`` (UTC days) from the platform's
    ledger: one line per entry, the total the sum of the lines; a merchant with no entries has an empty
    statement at zero, in the currency of the platform's rights (or, when it declares none, the merchant's
    own from ``currencies``)."""
    default_currency = _currency(rights.manifest)
    since, until = period(start, end)
    wanted = list(merchants) if merchants is not None else [m.id for m in rights.manifest.merchants]
    for merchant in wanted:
        rights.manifest.merchant(merchant)
    by_merchant: dict[str, list[Entry]] = {merchant: [] for merchant in wanted}
    for entry in rights.ledger(since, until):
        if entry.merchant in by_merchant:
            by_merchant[entry.merchant].append(entry)
    statements: list[Statement] = []
    for merchant, lines in by_merchant.items():
        in_ledger = sorted({line.amount.currency for line in lines})
        for currency in in_ledger or [default_currency or _merchant_currency(merchant, currencies)]:
            own = tuple(line for line in lines if line.amount.currency == currency)
            statements.append(
                Statement(
                    merchant,
                    PLATFORM_PARTNER,
                    start,
                    end,
                    currency,
                    own,
                    Money(sum(line.amount.amount for line in own), currency),
                    sum(line.points for line in own if line.kind == EARN),
                    sum(line.points for line in own if line.kind == SPEND),
                )
            )
    totals = rights.ledger_totals(since, until, None if merchants is None else wanted)
    return Settlement(rights.manifest.id, start, end, tuple(statements), totals)


def _currency(manifest: PlatformManifest) -> str | None:
    """The currency the platform's rights are worth in (``blocks platform check`` holds every right and
    every merchant that joins one to a single currency); None when it declares no rights."""
    if manifest.rights.points is not None:
        return manifest.rights.points.value.currency
    if manifest.rights.coupons:
        return manifest.rights.coupons[0].value.currency
    return None


def _merchant_currency(merchant: str, currencies: Mapping[str, str] | None) -> str:
    if currencies and merchant in currencies:
        return currencies[merchant]
    raise InvalidInput(
        f"merchant {merchant!r} has nothing in the platform's ledger and the platform declares no rights to "
        "take a currency from: assemble the merchant (blocks platform assemble) so its own currency is known"
    )


def parse_period(text: str) -> tuple[date, date]:
    """A settlement period as written on the command line or in a query: a month (``2026-11``), a day
    (``2026-11-30``), or two days (``2026-11-01..2026-11-15``, both included)."""
    import calendar

    value = text.strip()
    try:
        if ".." in value:
            first, last = value.split("..", 1)
            start, end = date.fromisoformat(first.strip()), date.fromisoformat(last.strip())
        elif len(value) == 7:
            year, month = (int(part) for part in value.split("-"))
            start = date(year, month, 1)
            end = date(year, month, calendar.monthrange(year, month)[1])
        else:
            start = end = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"a period is a month (2026-11), a day (2026-11-30) or two days (2026-11-01..2026-11-15); got {text!r}"
        ) from None
    period(start, end)
    return start, end


def _money(money: Money) -> dict[str, object]:
    # The one JSON shape of money of every command and route: minor units and the currency.
    return {"amount": money.amount, "currency": money.currency}


def entry_json(entry: Entry) -> dict[str, object]:
    """One ledger entry as the rights routes answer it."""
    return {
        "merchant": entry.merchant,
        "partner": entry.partner,
        "key": entry.key,
        "kind": entry.kind,
        "member": entry.member,
        "code": entry.code,
        "points": entry.points,
        "amount": _money(entry.amount),
        "reference": entry.reference,
        "at": entry.at.isoformat(),
    }


def settlement_json(settlement: Settlement) -> dict[str, object]:
    """The settlement as the CLI's ``--json`` and the HTTP route show it (money in minor units)."""
    return {
        "platform": settlement.platform,
        "from": settlement.start.isoformat(),
        "to": settlement.end.isoformat(),
        "balanced": settlement.balanced,
        "ledger_total": [
            _money(Money(amount, currency)) for currency, amount in sorted(settlement.ledger_total.items())
        ],
        "statements": [
            {
                "merchant": statement.merchant,
                "partner": statement.partner,
                "currency": statement.currency,
                "total": _money(statement.total),
                "points_earned": statement.earned_points,
                "coupons": _money(statement.coupons),
                "merchant_ledger": None if statement.merchant_ledger is None else _money(statement.merchant_ledger),
                "reconciled": statement.reconciled,
                "points_spent": statement.spent_points,
                "lines": [
                    {
                        "at": line.at.isoformat(),
                        "kind": line.kind,
                        "reference": line.reference,
                        "member": line.member,
                        "code": line.code,
                        "points": line.points,
                        "amount": _money(line.amount),
                    }
                    for line in statement.lines
                ],
            }
            for statement in settlement.statements
        ],
    }
