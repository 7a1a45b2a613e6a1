"""The saga state a step writes is the whole state, whatever part of it was encoded before."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from retailblocks.flows.saga import FaultInjector, SagaRun, SagaRunner, state_text
from retailblocks.flows.state import OMIT_DEFAULT, FlowKind, FlowState


@attrs.frozen(kw_only=True)
class Toy(FlowState):
    """A state whose fields are written only once set, like the keys of a plain document."""

    plan: tuple[int, ...] | None = attrs.field(default=None, metadata=OMIT_DEFAULT)
    total: int | None = attrs.field(default=None, metadata=OMIT_DEFAULT)
    captures: Mapping[int, int] | None = attrs.field(default=None, metadata=OMIT_DEFAULT)
    reservation: Mapping[str, str] | None = attrs.field(default=None, metadata=OMIT_DEFAULT)
    a: int | None = attrs.field(default=None, metadata=OMIT_DEFAULT)


def runner(settled: tuple[str, ...]) -> SagaRunner:
    return SagaRunner(stack=None, flow=FlowKind.CHECKOUT, steps=[], faults=FaultInjector(), settled=settled)  # type: ignore[arg-type]


def written(saga_runner: SagaRunner, run: SagaRun[Toy]) -> dict[str, Any]:
    text = state_text(run, saga_runner.settled)  # what the runner's progress writes
    return json.loads(text)  # type: ignore[no-any-return]


def test_the_text_holds_every_key_and_the_done_steps() -> None:
    run = SagaRun(id="s", flow=FlowKind.CHECKOUT, order_id="o", channel="web", key="k", state=Toy(plan=(1,), total=5))
    saga_runner = runner(("plan", "total", "reservation"))
    assert written(saga_runner, run) == {"plan": [1], "total": 5, "done": []}
    run.state = attrs.evolve(run.state, captures={0: 5})
    run.done.append("reserve")
    assert written(saga_runner, run) == {"plan": [1], "total": 5, "captures": {"0": 5}, "done": ["reserve"]}


def test_a_settled_value_replaced_is_written_anew() -> None:
    run = SagaRun(id="s", flow=FlowKind.CHECKOUT, order_id="o", channel="web", key="k", state=Toy(plan=(1,)))
    saga_runner = runner(("plan", "reservation"))
    written(saga_runner, run)
    run.state = attrs.evolve(run.state, plan=(2,), reservation={"id": "r"})
    assert written(saga_runner, run) == {"plan": [2], "reservation": {"id": "r"}, "done": []}
    run.state = attrs.evolve(run.state, plan=None)
    assert written(saga_runner, run) == {"reservation": {"id": "r"}, "done": []}


def test_without_settled_keys_the_text_is_the_plain_encoding() -> None:
    run = SagaRun(id="s", flow=FlowKind.REFUND, order_id="o", channel=None, key="k", state=Toy(a=1))
    assert written(runner(()), run) == {"a": 1, "done": []}
