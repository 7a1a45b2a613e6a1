"""``/admin/wallets``: gift cards issued and wallets topped up (each once per key), and a wallet's balance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from retailblocks.http.admin._common import READ_PROBLEMS, WRITE_PROBLEMS, ApiDep, IdempotencyKey, scoped
from retailblocks.http.admin.schemas import (
    GiftCardIn,
    StoredValueOut,
    TopUpIn,
    WalletBalanceOut,
    stored_value_out,
)
from retailblocks.http.schemas import money_out
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey
from retailblocks.model import Money

router = APIRouter(prefix="/wallets", tags=["admin: wallets"])
Reader = Annotated[ApiKey, Depends(scoped("wallets", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("wallets", "write"))]


@router.post(
    "/gift-cards",
    response_model=StoredValueOut,
    status_code=201,
    responses=WRITE_PROBLEMS,
    summary="Issue a gift card loaded with an amount; its number is in the answer (and its replays) only",
)
async def issue_gift_card(
    request: Request, body: GiftCardIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    amount = Money(body.amount, api.stack.currency)
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: stored_value_out(api.stack.issue_stored_value("gift_card", amount, key=key)),
        status=201,
    )


@router.post(
    "/{member_id}/top-ups",
    response_model=StoredValueOut,
    status_code=201,
    responses=WRITE_PROBLEMS,
    summary="Add an amount to a member's wallet, opening it if need be",
)
async def top_up(
    request: Request,
    member_id: str,
    body: TopUpIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    amount = Money(body.amount, api.stack.currency)
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda key: stored_value_out(api.stack.issue_stored_value("wallet", amount, member_id=member_id, key=key)),
        status=201,
    )


@router.get(
    "/{member_id}", response_model=WalletBalanceOut, responses=READ_PROBLEMS, summary="What a member's wallet holds"
)
def wallet(member_id: str, caller: Reader, api: ApiDep) -> WalletBalanceOut:
    return WalletBalanceOut(member_id=member_id, balance=money_out(api.stack.wallet_balance(member_id)))
