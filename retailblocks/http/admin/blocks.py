"""``/admin/blocks``: what the stack is assembled from (what ``blocks assemble --json`` shows), and its lock."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from retailblocks.assembly.describe import describe_plan
from retailblocks.http.admin._common import READ_PROBLEMS, ApiDep, scoped
from retailblocks.http.admin.schemas import AssembledOut, LockOut
from retailblocks.manifest.api import ApiKey

router = APIRouter(prefix="/blocks", tags=["admin: blocks"])


@router.get(
    "",
    response_model=AssembledOut,
    responses=READ_PROBLEMS,
    summary="The assembled blocks, their configuration (secrets masked), routing, and the manifest against its lock",
)
def assembled(caller: Annotated[ApiKey, Depends(scoped("blocks", "read"))], api: ApiDep) -> AssembledOut:
    lock = api.stack.lock_status()
    return AssembledOut.model_validate(
        describe_plan(api.stack.plan) | {"lock": LockOut(locked=lock.locked, changes=list(lock.changes))}
    )
