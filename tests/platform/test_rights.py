"""Rights shared across merchants: platform points and platform-funded coupons, kept by the platform and
settled with each merchant from its ledger, on SQLite and PostgreSQL (a role per merchant)."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from retailblocks.clock import ManualClock
from retailblocks.errors import BusinessRejection, IdempotencyConflict, PromotionRejected
from retailblocks.manifest.errors import ManifestError
from retailblocks.platform.manifest import load_platform
from retailblocks.platform.operations import Platform, assemble_platform, open_platform
from retailblocks.platform.rights import SharedRights, parse_period, settle
from tests.cli.harness import blocks
from tests.platform.conftest import ENV

RIGHTS = textwrap.dedent("""\
    rights:
      points: {name: Mall Points, value: "0.01 CNY", merchants: [north, south]}
      coupons:
        - {code: MALL5, value: "5.00 CNY", merchants: [north, south]}
        - {code: MALL-TRIPLE, value: "2.00 CNY", uses: 3, merchants: [north, south], on_refund: clawback}
        - {code: NORTHONLY, value: "1.00 CNY", merchants: [north]}
    """)


@pytest.fixture
def platform(platform_path: Path) -> Iterator[Platform]:
    text = platform_path.read_text(encoding="utf-8")
    # A third merchant that joined nothing; its manifest is never read by the rights.
    text = text.replace("api:\n", "  - {id: east, manifest: south/blocks.yaml, database: main}\napi:\n", 1)
    platform_path.write_text(text + RIGHTS, encoding="utf-8")
    with open_platform(platform_path, environ=ENV) as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 3, 10, tzinfo=UTC))


@pytest.fixture
def rights(platform: Platform, clock: ManualClock) -> SharedRights:
    return SharedRights(platform.manifest, platform.home, clock)


def test_points_earned_at_one_merchant_are_spent_at_another(rights: SharedRights) -> None:
    earned = rights.earn("north", "phone:+8613800000001", 500, reference="N-1", key="earn-N-1")
    assert earned.amount.amount == -500 and earned.partner == "platform"  # north pays the platform 5.00 CNY
    spent = rights.spend("south", "phone:+8613800000001", 300, reference="S-1", key="spend-S-1")
    assert spent.amount.amount == 300  # the platform pays south 3.00 CNY
    balance = rights.balance("phone:+8613800000001")
    assert (balance.points, balance.value.format()) == (200, "2.00 CNY")
    with pytest.raises(BusinessRejection, match="has 200 Mall Points points, not the 201"):
        rights.spend("south", "phone:+8613800000001", 201, reference="S-2", key="spend-S-2")
    assert rights.balance("phone:+8613800000001").points == 200
    # Replaying a key answers its entry and moves nothing; the key with another request is refused.
    assert rights.spend("south", "phone:+8613800000001", 300, reference="S-1", key="spend-S-1") == spent
    assert rights.balance("phone:+8613800000001").points == 200
    with pytest.raises(IdempotencyConflict):
        rights.spend("south", "phone:+8613800000001", 100, reference="S-1", key="spend-S-1")
    with pytest.raises(BusinessRejection, match="'east' has not joined the platform's points programme"):
        rights.earn("east", "phone:+8613800000001", 10, reference="E-1", key="earn-E-1")


def test_a_platform_coupon_used_at_one_merchant_cannot_be_used_at_another(rights: SharedRights) -> None:
    used = rights.redeem_coupon("north", "mall5", reference="N-7", key="coupon-N-7")
    assert (used.code, used.amount.format()) == ("MALL5", "5.00 CNY")
    with pytest.raises(PromotionRejected, match="MALL5 has been used once, its limit across all merchants"):
        rights.redeem_coupon("south", "MALL5", reference="S-7", key="coupon-S-7")
    assert rights.redeem_coupon("north", "MALL5", reference="N-7", key="coupon-N-7") == used  # a replay
    # Cancelled at north: the use comes back, so south may now use it.
    released = rights.release_coupon("north", "coupon-N-7")
    assert released is not None and released.amount.amount == -500
    assert rights.release_coupon("north", "coupon-N-7") == released  # released once
    assert rights.redeem_coupon("south", "MALL5", reference="S-7", key="coupon-S-7").merchant == "south"


def test_a_merchant_outside_a_coupon_refuses_it_clearly(rights: SharedRights) -> None:
    with pytest.raises(PromotionRejected, match=r"NORTHONLY is not valid at merchant 'south'.*north only"):
        rights.redeem_coupon("south", "NORTHONLY", reference="S-1", key="k")
    with pytest.raises(PromotionRejected, match="'NOPE' is not a platform coupon"):
        rights.redeem_coupon("south", "nope", reference="S-1", key="k")


def test_refunds_follow_the_coupons_on_refund(rights: SharedRights) -> None:
    rights.redeem_coupon("north", "MALL5", reference="N-1", key="a")
    assert rights.release_coupon("north", "a", refund=True) is None  # keep: the platform still pays
    rights.redeem_coupon("north", "MALL-TRIPLE", reference="N-2", key="b")
    clawed = rights.release_coupon("north", "b", refund=True)
    assert clawed is not None and (clawed.kind, clawed.amount.amount) == ("coupon_clawback", -200)


def test_racing_merchants_share_a_coupons_last_use(rights: SharedRights) -> None:
    rights.redeem_coupon("north", "MALL-TRIPLE", reference="N-0", key="first")
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def redeem(merchant: str, n: int) -> None:
        barrier.wait()
        try:
            rights.redeem_coupon(merchant, "MALL-TRIPLE", reference=f"{merchant}-{n}", key=f"race-{n}")
            outcomes.append("won")
        except PromotionRejected:
            outcomes.append("lost")

    threads = [threading.Thread(target=redeem, args=(("north", "south")[n % 2], n)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost"] * 4 + ["won"] * 2  # 3 uses: one before, two of the six racers


def test_racing_spends_never_overdraw(rights: SharedRights) -> None:
    rights.earn("north", "m1", 100, reference="N-1", key="e")
    outcomes: list[bool] = []
    barrier = threading.Barrier(4)

    def spend(n: int) -> None:
        barrier.wait()
        try:
            rights.spend(("north", "south")[n % 2], "m1", 40, reference=f"O-{n}", key=f"s-{n}")
            outcomes.append(True)
        except BusinessRejection:
            outcomes.append(False)

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(True) == 2 and rights.balance("m1").points == 20


def test_settlement_bills_each_merchant_and_balances_with_the_platform_ledger(
    rights: SharedRights, clock: ManualClock
) -> None:
    rights.earn("north", "m1", 1234, reference="N-1", key="e1")
    rights.redeem_coupon("north", "MALL5", reference="N-2", key="c1")
    clock.advance(timedelta(days=1))
    rights.spend("south", "m1", 999, reference="S-1", key="s1")
    rights.redeem_coupon("south", "MALL-TRIPLE", reference="S-2", key="c2")
    rights.release_coupon("north", "c1")
    clock.advance(timedelta(days=30))  # December: outside the period
    rights.spend("north", "m1", 1, reference="N-3", key="s2")

    settlement = settle(rights, *parse_period("2026-11"))
    by_merchant = {statement.merchant: statement for statement in settlement.statements}
    assert by_merchant["north"].total.amount == -1234 + 500 - 500
    assert by_merchant["south"].total.amount == 999 + 200
    assert by_merchant["east"].lines == () and by_merchant["east"].total.amount == 0
    for statement in settlement.statements:
        assert statement.total.amount == sum(line.amount.amount for line in statement.lines)
    assert settlement.ledger_total == {"CNY": -1234 + 999 + 200}
    assert settlement.balanced
    assert (by_merchant["north"].earned_points, by_merchant["south"].spent_points) == (1234, 999)
    only_south = settle(rights, date(2026, 11, 1), date(2026, 11, 30), ["south"])
    assert only_south.ledger_total == {"CNY": 999 + 200} and only_south.balanced
    december = settle(rights, date(2026, 12, 1), date(2026, 12, 31))
    assert {s.merchant: s.total.amount for s in december.statements}["north"] == 1


def test_blocks_platform_settle(platform: Platform) -> None:
    rights = platform.rights
    rights.earn("north", "m1", 10, reference="N-1", key="e1")
    today = rights.clock.now().date()
    path = platform.manifest.path
    result = blocks("platform", "settle", "-p", path, "--period", today.isoformat(), "--json", env=ENV)
    assert result.status == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["balanced"] and shown["ledger_total"] == [{"amount": -10, "currency": "CNY"}]
    assert [s["total"]["amount"] for s in shown["statements"] if s["merchant"] == "north"] == [-10]
    result = blocks("platform", "settle", "-p", path, "--period", "2026-13", env=ENV)
    assert result.status != 0 and "a period is a month" in result.one_error_line()


def test_a_platform_without_shared_rights_settles_each_merchant_at_zero_in_its_own_currency(
    platform_path: Path,
) -> None:
    # The conftest's platform declares merchants and keys but no 'rights:'.
    result = blocks("platform", "settle", "-p", platform_path, "--period", "2026-11", env=ENV)
    assert result.status == 2
    assert "assemble the merchant" in result.one_error_line()
    assemble_platform(platform_path, environ=ENV)
    result = blocks("platform", "settle", "-p", platform_path, "--period", "2026-11", "--json", env=ENV)
    assert result.status == 0, result.stderr
    shown = {s["merchant"]: s for s in json.loads(result.stdout)["statements"]}
    assert {m: (s["currency"], s["total"]["amount"]) for m, s in shown.items()} == {
        "north": ("CNY", 0),
        "south": ("EUR", 0),
    }


def test_merchants_cannot_reach_the_platform_ledger_or_each_other(platform: Platform, rights: SharedRights) -> None:
    rights.earn("north", "m1", 10, reference="N-1", key="e1")
    database = platform.manifest.databases["main"]
    if database.directory is not None:
        # SQLite: the platform's ledger is a file of its own, not in any merchant's file.
        north = platform.placement.merchant_engine(platform.manifest.merchant("north"))
        with north.connect() as connection:
            names = sa.inspect(connection).get_table_names()
        assert "rights_ledger" not in names and "point_accounts" not in names
        return
    north = platform.placement.merchant_engine(platform.manifest.merchant("north"))
    platform.placement.merchant_engine(platform.manifest.merchant("south"))
    for statement in ("SELECT count(*) FROM rb_platform.rights_ledger", "SELECT count(*) FROM m_south.merchants"):
        with north.connect() as connection, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            connection.execute(sa.text(statement))


def test_the_manifest_refuses_bad_rights(tmp_path: Path) -> None:
    (tmp_path / "platform.yaml").write_text(
        textwrap.dedent("""\
            platform: {id: mall, name: The Mall}
            databases: {main: {directory: data}}
            merchants:
              - {id: north, manifest: north/blocks.yaml, database: main}
            rights:
              points: {name: P, value: "0 CNY", merchants: [north]}
              coupons:
                - {code: lower, value: "1.00 CNY", merchants: [north]}
                - {code: OK1, value: "1.00 CNY", merchants: [nroth]}
            """),
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as caught:
        load_platform(tmp_path / "platform.yaml")
    text = str(caught.value)
    assert "above zero" in text and "coupon code" in text and "unknown merchant 'nroth'" in text


def test_the_settlement_route(platform: Platform) -> None:
    from starlette.testclient import TestClient

    from retailblocks.http.platform import create_platform_app
    from tests.platform.conftest import NORTH_ADMIN, PLATFORM_READ

    platform.rights.redeem_coupon("north", "MALL5", reference="N-1", key="c1")
    today = platform.rights.clock.now().date().isoformat()
    with TestClient(create_platform_app(platform), raise_server_exceptions=False) as client:
        read = {"Authorization": f"Bearer {PLATFORM_READ}"}
        answer = client.get("/platform/settlement", params={"period": today, "merchant": "north"}, headers=read)
        assert answer.status_code == 200, answer.text
        assert [s["total"]["amount"] for s in answer.json()["statements"]] == [500]
        bad = client.get("/platform/settlement", params={"period": "soon"}, headers=read)
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
        assert client.get("/platform/settlement", params={"period": today},
                          headers={"Authorization": f"Bearer {NORTH_ADMIN}"}).status_code == 401  # fmt: skip


def test_check_refuses_a_right_in_another_currency_than_the_merchants(platform: Platform) -> None:
    from retailblocks.platform.operations import check_platform

    # The fixture's rights are in CNY; south keeps EUR (the rights' own tests never plan the merchants).
    with pytest.raises(ManifestError) as caught:
        check_platform(platform.manifest.path, environ=ENV)
    text = str(caught.value)
    assert "points programme 'Mall Points' is in CNY but merchant 'south' keeps EUR" in text
    assert "coupon MALL5 is in CNY but merchant 'south' keeps EUR" not in text  # one line per merchant
    assert "'north'" not in text


def test_settlement_reconciles_each_merchants_own_ledger(platform_path: Path) -> None:
    from retailblocks.platform.operations import assemble_platform, settle_platform
    from tests.helpers import cart, receive

    north = platform_path.parent / "north" / "blocks.yaml"
    text = north.read_text(encoding="utf-8").replace(
        "        - {id: save5, code: SAVE5,",
        '        - {id: mall5, code: MALL5, target: order, allocation: across, value_type: fixed, value: "5.00 CNY",\n'
        "           funder: platform}\n"
        "        - {id: save5, code: SAVE5,",
    )
    north.write_text(text + "partners:\n  - {id: platform, name: The Mall, type: platform}\n", encoding="utf-8")
    rights = 'rights:\n  coupons:\n    - {code: MALL5, value: "5.00 CNY", uses: 5, merchants: [north]}\n'
    platform_path.write_text(platform_path.read_text(encoding="utf-8") + rights, encoding="utf-8")
    assemble_platform(platform_path, environ=ENV)
    with open_platform(platform_path, environ=ENV) as platform:
        stack = platform.stack("north")
        receive(stack, {"BEANS": 5})
        order = stack.checkout(cart(("BEANS", 1), coupons=("MALL5",)), key="order-1")
        # The merchant's checkout asks the platform for the use (its integration's call), keyed by its order.
        platform.rights.redeem_coupon("north", "MALL5", reference=order.id, key=f"coupon-{order.id}")
        today = platform.rights.clock.now().date()
    settlement = settle_platform(platform_path, today, today, environ=ENV)
    by_merchant = {statement.merchant: statement for statement in settlement.statements}
    assert by_merchant["north"].merchant_ledger == by_merchant["north"].coupons == by_merchant["north"].total
    assert by_merchant["north"].total.amount == 500 and by_merchant["north"].reconciled is True
    assert by_merchant["south"].merchant_ledger is None and by_merchant["south"].reconciled is None
    # A use the platform recorded that north's books never billed is shown, not hidden.
    with open_platform(platform_path, environ=ENV) as platform:
        platform.rights.redeem_coupon("north", "MALL5", reference="not-an-order", key="stray")
    again = {s.merchant: s for s in settle_platform(platform_path, today, today, environ=ENV).statements}
    assert again["north"].reconciled is False and again["north"].merchant_ledger.amount == 500  # type: ignore[union-attr]


def test_cancelled_points_are_reversed_once(rights: SharedRights) -> None:
    rights.earn("north", "m1", 100, reference="N-1", key="e1")
    rights.spend("south", "m1", 60, reference="S-1", key="s1")
    with pytest.raises(BusinessRejection, match="has spent the 100 points earned with 'e1' since"):
        rights.reverse_points("north", "e1")  # only 40 left
    back = rights.reverse_points("south", "s1")  # south's order cancelled: the 60 points come back
    assert (back.kind, back.amount.amount) == ("points_spent_reversed", -60)
    assert rights.reverse_points("south", "s1") == back and rights.balance("m1").points == 100
    taken = rights.reverse_points("north", "e1")
    assert (taken.kind, taken.amount.amount) == ("points_earned_reversed", 100)
    assert rights.balance("m1").points == 0


def test_the_merchants_rights_routes(platform_path: Path) -> None:
    from starlette.testclient import TestClient

    from retailblocks.http.platform import create_platform_app
    from retailblocks.platform.operations import assemble_platform
    from tests.platform.conftest import NORTH_ADMIN, SOUTH_ADMIN

    rights = (
        'rights:\n  points: {name: Mall Points, value: "0.01 CNY", merchants: [north]}\n'
        '  coupons:\n    - {code: MALL5, value: "5.00 CNY", merchants: [north]}\n'
    )
    platform_path.write_text(platform_path.read_text(encoding="utf-8") + rights, encoding="utf-8")
    assemble_platform(platform_path, environ=ENV)
    with (
        open_platform(platform_path, environ=ENV) as platform,
        TestClient(create_platform_app(platform), raise_server_exceptions=False) as client,
    ):
        north = {"Authorization": f"Bearer {NORTH_ADMIN}"}
        earn = {"member": "phone:+86138", "points": 300, "reference": "N-1", "key": "e1"}
        assert client.post("/m/north/platform/rights/points/earn", json=earn,
                           headers={"Authorization": f"Bearer {SOUTH_ADMIN}"}).status_code == 401  # fmt: skip
        answer = client.post("/m/north/platform/rights/points/earn", json=earn, headers=north)
        assert answer.status_code == 200, answer.text
        assert answer.json()["amount"] == {"amount": -300, "currency": "CNY"} and answer.json()["partner"] == "platform"
        assert client.post("/m/north/platform/rights/points/earn", json=earn, headers=north).json() == answer.json()
        balance = client.get("/m/north/platform/rights/balance", params={"member": "phone:+86138"}, headers=north)
        assert balance.json()["points"] == 300
        too_many = {"member": "phone:+86138", "points": 301, "reference": "N-2", "key": "s1"}
        refused = client.post("/m/north/platform/rights/points/spend", json=too_many, headers=north)
        assert refused.status_code == 409 and refused.headers["content-type"].startswith("application/problem+json")
        coupon = {"code": "MALL5", "reference": "N-3", "key": "c1"}
        assert client.post("/m/north/platform/rights/coupons/redeem", json=coupon, headers=north).status_code == 200
        again = client.post("/m/north/platform/rights/coupons/redeem", json={**coupon, "key": "c2"}, headers=north)
        assert again.status_code == 409 and "used once" in again.text
        south = {"Authorization": f"Bearer {SOUTH_ADMIN}"}
        outside = client.post("/m/south/platform/rights/coupons/redeem", json={**coupon, "key": "c3"}, headers=south)
        assert outside.status_code == 409 and "not valid at merchant 'south'" in outside.text
        bad = client.post("/m/north/platform/rights/points/earn", json={**earn, "points": "many"}, headers=north)
        assert bad.status_code == 400
        assert client.post("/m/north/platform/rights/points/earn", content=b"{", headers=north).status_code == 400
