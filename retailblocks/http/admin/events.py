"""``/admin/events``: the outbox a page at a time, deliveries given up on, and delivering them again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from retailblocks.errors import InvalidInput
from retailblocks.http.admin._common import (
    READ_PROBLEMS,
    WRITE_PROBLEMS,
    ApiDep,
    IdempotencyKey,
    decode_cursor,
    encode_cursor,
    next_link,
    scoped,
)
from retailblocks.http.admin.schemas import (
    DeadLetters,
    DeliveryFailures,
    EventPage,
    RedeliverIn,
    RedeliveryOut,
    dead_letter_out,
    delivery_failure_out,
    event_out,
)
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey
from retailblocks.model.limits import MAX_ID_LENGTH

router = APIRouter(prefix="/events", tags=["admin: events"])
Reader = Annotated[ApiKey, Depends(scoped("events", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("events", "write"))]
_CURSOR = "events"


def _event_id(position: str | None) -> int:
    if position is None:
        return 0
    if not position.isdigit():
        raise InvalidInput("this cursor was not returned by this listing; start again without one")
    return int(position)


@router.get("", response_model=EventPage, responses=READ_PROBLEMS, summary="Outbox events, oldest first")
def list_events(
    request: Request,
    caller: Reader,
    api: ApiDep,
    type: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, description="a prefix, e.g. order.")] = None,
    order: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> EventPage:
    found = api.stack.events(
        after=_event_id(decode_cursor(_CURSOR, cursor)), limit=limit + 1, event_type=type, order_id=order
    )
    page = found[:limit]
    following = encode_cursor(_CURSOR, str(page[-1].id)) if len(found) > limit else None
    return EventPage(
        data=[event_out(event) for event in page],
        next_cursor=following,
        next=next_link(request, following) if following else None,
    )


@router.get(
    "/dead-letters",
    response_model=DeadLetters,
    responses=READ_PROBLEMS,
    summary="Deliveries given up after too many failures, with the last error",
)
def dead_letters(caller: Reader, api: ApiDep) -> DeadLetters:
    return DeadLetters(data=[dead_letter_out(letter) for letter in api.stack.dead_letters()])


@router.get(
    "/failures",
    response_model=DeliveryFailures,
    responses=READ_PROBLEMS,
    summary="Deliveries to listeners and webhooks that failed and were not made since: retrying or dead",
)
def failures(caller: Reader, api: ApiDep) -> DeliveryFailures:
    return DeliveryFailures(data=[delivery_failure_out(failure) for failure in api.stack.delivery_failures()])


@router.post(
    "/{event_id}/redeliver",
    response_model=RedeliveryOut,
    responses=WRITE_PROBLEMS,
    summary="Give an event's dead letters another delivery attempt now",
    description="A listener's is delivered before the answer; a webhook's (subscriber webhook:<id>) goes out "
    "with the webhook's next delivery round, so that the request never waits for a receiver.",
)
async def redeliver(
    request: Request,
    # An outbox id is a 64-bit integer on both databases: a larger number names no event (and SQLite's
    # driver would refuse to bind it).
    event_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: RedeliverIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def run(_key: str) -> RedeliveryOut:
        done = api.stack.redeliver(event_id, body.subscriber)
        return RedeliveryOut(
            rearmed=done.rearmed,
            delivered=done.dispatched.delivered,
            failed=done.dispatched.failed,
            dead=done.dispatched.dead,
        )

    return await run_once(request, api, caller, idempotency_key, run)
