"""The admin API (``/admin``): what operators and back offices do, area by area, each under its scope.

An admin key's scopes name areas (``orders:read``, ``stock:write``, ``*``): GET needs read, everything
else write. A store key never reaches these routes (403). Every POST runs once per Idempotency-Key.
"""

from __future__ import annotations

from fastapi import APIRouter

from retailblocks.http.admin import blocks, events, flows, fusion, members, orders, statements, stock, wallets

router = APIRouter(prefix="/admin")
for area in (orders, stock, flows, events, members, wallets, blocks, statements):
    router.include_router(area.router)
for fused in fusion.routers:
    router.include_router(fused)

__all__ = ["router"]
