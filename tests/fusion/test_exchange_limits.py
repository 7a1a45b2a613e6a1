"""Points exchanged with a partner within the programme's limits per member and per day: the exchange that
would pass a limit is refused with its own cause (nothing moves), a replayed key still answers the
exchange it made, the next day starts afresh, and concurrent exchanges never pass the limit together."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from retailblocks_loyalty import Loyalty

from retailblocks.errors import ExchangeLimitReached
from retailblocks.fusion import settle
from retailblocks.http.problems import problem_for
from retailblocks.model import Identity
from retailblocks.stack import Stack
from tests.fusion.conftest import BRAND
from tests.helpers import cart, make_stack

PHONE = Identity("phone", "+8613800000002")

LIMITED = BRAND.replace(
    "      partners: {metro: {rate_percent: 50}}\n",
    "      partners:\n"
    "        metro: {rate_percent: 50, max_points_per_member_per_day: 250, max_exchanges_per_member_per_day: 3}\n"
    "        tea-farm: {rate_percent: 100}\n",
).replace(
    "  - {id: metro, name: Metro Mall, type: platform}\n",
    "  - {id: metro, name: Metro Mall, type: platform}\n  - {id: tea-farm, name: Tea Farm, type: brand}\n",
)


@pytest.fixture
def limited(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    the_stack = make_stack(tmp_path, database_url, text=LIMITED, stock=20)
    yield the_stack
    the_stack.close()


def member_with_points(stack: Stack, points: int) -> str:
    """A member holding ``points`` brought in from tea-farm, a partner without daily limits."""
    order = stack.checkout(cart(("TEA", 1), identities=(PHONE,)), key="join")
    assert order.member_id is not None
    loyalty = stack.block("loyalty")
    assert isinstance(loyalty, Loyalty)
    with stack.context(flow="test") as ctx:
        loyalty.exchange_in(ctx, order.member_id, "tea-farm", points, "fill")
    return order.member_id


def test_an_exchange_past_the_daily_points_limit_is_refused_and_moves_nothing(limited: Stack) -> None:
    member = member_with_points(limited, 2000)
    first = limited.redeem_points(member, "metro", 200, key="x-1")
    with pytest.raises(ExchangeLimitReached, match=r"exchanged 200 points with metro on 2026-03-02.*50 left today"):
        limited.redeem_points(member, "metro", 51, key="x-2")
    limited.redeem_points(member, "metro", 50, key="x-3")  # exactly up to the limit
    assert limited.redeem_points(member, "metro", 200, key="x-1") == first  # a replay is not a new exchange
    day = limited.clock.now().date()
    [points_out] = {line.kind for line in settle(limited, "metro", day, day).lines}
    assert points_out == "points_out"
    assert -sum(line.amount.amount for line in settle(limited, "metro", day, day).lines) == 250  # x-2 left nothing

    limited.clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    limited.redeem_points(member, "metro", 250, key="x-4")  # a new day, a new allowance


def test_the_number_of_exchanges_a_day_is_limited_too(limited: Stack) -> None:
    member = member_with_points(limited, 2000)
    for number in range(3):
        limited.redeem_points(member, "metro", 10, key=f"n-{number}")
    with pytest.raises(ExchangeLimitReached, match=r"made 3 exchange\(s\) with metro.*at most 3 a day"):
        limited.redeem_points(member, "metro", 10, key="n-3")


def test_the_refusal_is_its_own_problem_over_http() -> None:
    response = problem_for(ExchangeLimitReached("member m has exchanged 250 points with metro"))
    body = json.loads(bytes(response.body))
    assert response.status_code == 409
    assert body["cause"] == "exchange_limit_reached" and body["type"].endswith("exchange-limit-reached")


def test_concurrent_exchanges_never_pass_the_limit_together(limited: Stack) -> None:
    member = member_with_points(limited, 2000)
    barrier = threading.Barrier(4)
    done: list[str] = []
    refused: list[BaseException] = []
    failures: list[BaseException] = []

    def exchange(number: int) -> None:
        barrier.wait()
        try:
            limited.redeem_points(member, "metro", 100, key=f"c-{number}")
            done.append(f"c-{number}")
        except ExchangeLimitReached as error:
            refused.append(error)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=exchange, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert len(done) == 2 and len(refused) == 2  # 250 a day allows two exchanges of 100, never three
    day = limited.clock.now().date()
    assert sum(line.amount.amount for line in settle(limited, "metro", day, day).lines) == -200
