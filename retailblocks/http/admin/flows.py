"""``/admin/flows``: flows a crash or a failure left half-way, and recovering them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from retailblocks.http.admin._common import READ_PROBLEMS, WRITE_PROBLEMS, ApiDep, IdempotencyKey, scoped
from retailblocks.http.admin.schemas import Flows, RecoverIn, RecoveryOut, flow_out, recovery_out
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey

router = APIRouter(prefix="/flows", tags=["admin: flows"])
Reader = Annotated[ApiKey, Depends(scoped("flows", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("flows", "write"))]


@router.get(
    "",
    response_model=Flows,
    responses=READ_PROBLEMS,
    summary="Flows left half-way: running (recovery takes them once their lease runs out) and stuck, with why",
)
def unfinished(caller: Reader, api: ApiDep, status: Literal["running", "stuck"] | None = None) -> Flows:
    return Flows(data=[flow_out(state) for state in api.stack.unfinished_flows(status=status)])


@router.post(
    "/recover",
    response_model=RecoveryOut,
    responses=WRITE_PROBLEMS,
    summary="Finish or undo every flow whose owner is gone; report the stuck and the skipped with reasons",
)
async def recover(
    request: Request, body: RecoverIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    # Leases are always honoured here: other workers serve this stack, and their flows are theirs.
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda _key: recovery_out(api.stack.recover(retry_stuck=body.retry_stuck)),
    )
