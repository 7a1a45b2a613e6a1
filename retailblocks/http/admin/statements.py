"""``/admin/settlement/{partner}/statements``: a partner's statements drafted, issued once, confirmed, paid,
and exported as JSON or CSV.

Each route calls one function of :mod:`retailblocks.fusion.statements`, as ``blocks statements`` does.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from retailblocks.fusion.statements import (
    Statement,
    confirm_statement,
    draft_statement,
    get_statement,
    issue_statement,
    list_statements,
    pay_statement,
)
from retailblocks.http.admin._common import READ_PROBLEMS, WRITE_PROBLEMS, ApiDep, IdempotencyKey, scoped
from retailblocks.http.schemas import MoneyOut, StrictIn, money_out
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey

router = APIRouter(prefix="/settlement/{partner_id}/statements", tags=["admin: settlement"])
Reader = Annotated[ApiKey, Depends(scoped("settlement", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("settlement", "write"))]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "no such statement or partner"}}


class StatementLineOut(BaseModel):
    kind: str = Field(description="discount, clawback, points_in, points_out, marketplace_sale or correction")
    corrects: str | None = Field(description="for a correction: the kind of the line it corrects")
    reference: str = Field(description="the order or points journal entry")
    member_id: str | None
    at: datetime
    amount: MoneyOut = Field(description="positive: the partner owes the merchant")
    detail: str


class StatementOut(BaseModel):
    id: str | None = Field(description="none for a draft")
    partner: str
    start: date
    end: date
    status: Literal["draft", "issued", "confirmed", "paid"]
    total: MoneyOut = Field(description="the sum of the lines; positive: the partner pays the merchant")
    issued_at: datetime | None
    confirmed_at: datetime | None
    paid_at: datetime | None
    payment_reference: str | None
    lines: list[StatementLineOut]


class Statements(BaseModel):
    data: list[StatementOut]


class StatementIssueIn(StrictIn):
    start: date = Field(alias="from", description="first day, YYYY-MM-DD")
    end: date = Field(alias="to", description="last day, included; the period must be over")


class StatementPaymentIn(StrictIn):
    reference: str = Field(min_length=1, max_length=200, description="the bank transfer's or voucher's reference")


def statement_out(statement: Statement) -> StatementOut:
    return StatementOut(
        id=statement.id,
        partner=statement.partner,
        start=statement.start,
        end=statement.end,
        status=statement.status.value,
        total=money_out(statement.total),
        issued_at=statement.issued_at,
        confirmed_at=statement.confirmed_at,
        paid_at=statement.paid_at,
        payment_reference=statement.payment_reference,
        lines=[
            StatementLineOut(
                kind=line.kind,
                corrects=line.corrects or None,
                reference=line.reference,
                member_id=line.member_id,
                at=line.at,
                amount=money_out(line.amount),
                detail=line.detail,
            )
            for line in statement.lines
        ],
    )


@router.get(
    "", response_model=Statements, responses={**READ_PROBLEMS, **_UNKNOWN}, summary="The partner's issued statements"
)
def list_all(partner_id: str, caller: Reader, api: ApiDep) -> Statements:
    return Statements(data=[statement_out(s) for s in list_statements(api.stack, partner_id)])


@router.get(
    "/draft",
    response_model=StatementOut,
    responses={**READ_PROBLEMS, **_UNKNOWN},
    summary="What the statement for a period would bill, with corrections of earlier ones; writes nothing",
)
def draft(
    partner_id: str,
    caller: Reader,
    api: ApiDep,
    start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="last day, included")],
) -> StatementOut:
    return statement_out(draft_statement(api.stack, partner_id, start, end))


@router.post(
    "",
    response_model=StatementOut,
    status_code=201,
    responses={**WRITE_PROBLEMS, **_UNKNOWN},
    summary="Issue the statement for a period that is over (the same period again: the same statement)",
)
async def issue(
    request: Request,
    partner_id: str,
    body: StatementIssueIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda _key: statement_out(issue_statement(api.stack, partner_id, body.start, body.end)),
        status=201,
    )


@router.get(
    "/{statement_id}",
    response_model=StatementOut,
    responses={
        **READ_PROBLEMS,
        **_UNKNOWN,
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the statement"},
    },
    summary="One statement with its lines; ?format=csv exports the lines as CSV",
)
def show(
    partner_id: str,
    statement_id: str,
    caller: Reader,
    api: ApiDep,
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv")] = "json",
) -> Response | StatementOut:
    statement = get_statement(api.stack, statement_id, partner_id=partner_id)
    if format == "csv":
        filename = f"{statement.id}.csv"
        return Response(
            statement.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return statement_out(statement)


@router.post(
    "/{statement_id}/confirm",
    response_model=StatementOut,
    responses={**WRITE_PROBLEMS, **_UNKNOWN},
    summary="The partner agreed with an issued statement",
)
async def confirm(
    request: Request,
    partner_id: str,
    statement_id: str,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda _key: statement_out(confirm_statement(api.stack, statement_id, partner_id=partner_id)),
    )


@router.post(
    "/{statement_id}/payment",
    response_model=StatementOut,
    responses={**WRITE_PROBLEMS, **_UNKNOWN},
    summary="A confirmed statement was paid, by the payment's reference",
)
async def pay(
    request: Request,
    partner_id: str,
    statement_id: str,
    body: StatementPaymentIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda _key: statement_out(pay_statement(api.stack, statement_id, body.reference, partner_id=partner_id)),
    )
