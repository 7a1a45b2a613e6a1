"""Health checks for load balancers and orchestrators; they need no key and say nothing secret."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from retailblocks.http.schemas import Health, Readiness
from retailblocks.http.state import api_in_scope

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz", response_model=Health, summary="The server process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Readiness,
    summary="The server can take traffic: its database answers",
    responses={503: {"model": Readiness, "description": "not ready"}},
)
def readyz(request: Request) -> JSONResponse:
    api = api_in_scope(request.scope)
    checks: dict[str, str] = {}
    if api is None:
        checks["stack"] = "not assembled yet"
    else:
        try:
            with api.stack.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            checks["database"] = "ok"
        except sa.exc.SQLAlchemyError as error:
            checks["database"] = f"unreachable ({type(error).__name__})"
    ready = all(value == "ok" for value in checks.values())
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
