"""``/admin/members``: members fused across channels — profiles, one member's timeline, linking
identities (which merges two members when they name both), the merges and undoing one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from retailblocks.errors import InvalidValue
from retailblocks.fusion.profile import MemberProfile
from retailblocks.fusion.timeline import TimelineEntry
from retailblocks.http.admin._common import READ_PROBLEMS, WRITE_PROBLEMS, ApiDep, IdempotencyKey, scoped
from retailblocks.http.admin.schemas import (
    AdminConsentIn,
    AdminOptOutIn,
    EraseIn,
    LinkIn,
    MemberOut,
    MemberViewOut,
    MergeOut,
    Merges,
    Profiles,
    UndoMergeIn,
    member_out,
    merge_out,
    profile_out,
    timeline_entry_out,
)
from retailblocks.http.schemas import ConsentOut, ConsentsOut, ErasureOut, MemberExportOut, OptOutOut
from retailblocks.http.state import run_once
from retailblocks.manifest.api import ApiKey
from retailblocks.model import Identity

router = APIRouter(prefix="/members", tags=["admin: members"])
Reader = Annotated[ApiKey, Depends(scoped("members", "read"))]
Writer = Annotated[ApiKey, Depends(scoped("members", "write"))]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such member or merge"}}


def _view(found: tuple[MemberProfile, list[TimelineEntry]]) -> MemberViewOut:
    profile, entries = found
    return MemberViewOut(profile=profile_out(profile), timeline=[timeline_entry_out(e) for e in entries])


@router.get("", response_model=Profiles, responses=READ_PROBLEMS, summary="Every known member's profile")
def profiles(caller: Reader, api: ApiDep) -> Profiles:
    return Profiles(data=[profile_out(profile) for profile in api.stack.member_profiles()])


@router.get(
    "/lookup",
    response_model=MemberViewOut,
    responses={**READ_PROBLEMS, **_NOT_FOUND},
    summary="A member found by an identity: profile and timeline",
)
def lookup(
    caller: Reader,
    api: ApiDep,
    identity: Annotated[str, Query(min_length=3, max_length=250, description="kind:value, e.g. phone:+8613800000000")],
) -> MemberViewOut:
    return _view(api.stack.member_view(identity=identity))


@router.get(
    "/{member_id}",
    response_model=MemberViewOut,
    responses={**READ_PROBLEMS, **_NOT_FOUND},
    summary="A member's profile and timeline across every channel",
)
def member(member_id: str, caller: Reader, api: ApiDep) -> MemberViewOut:
    return _view(api.stack.member_view(member_id=member_id))


@router.get(
    "/{member_id}/merges",
    response_model=Merges,
    responses=READ_PROBLEMS,
    summary="The merges a member took part in, as survivor or absorbed, oldest first",
)
def merges(member_id: str, caller: Reader, api: ApiDep) -> Merges:
    return Merges(data=[merge_out(m) for m in api.stack.member_merges(member_id)])


@router.post(
    "/link",
    response_model=MemberOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Link identities to the member one of them names; identities of two members merge them",
)
async def link(
    request: Request, body: LinkIn, caller: Writer, api: ApiDep, idempotency_key: IdempotencyKey = None
) -> Response:
    try:
        identities = [Identity(i.kind, i.value) for i in body.identities]
    except ValueError as error:
        raise InvalidValue(f"identities: {error}") from None
    return await run_once(
        request, api, caller, idempotency_key, lambda _key: member_out(api.stack.link_identities(identities))
    )


@router.post(
    "/merges/{merge_id}/undo",
    response_model=MergeOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Undo a merge: the absorbed member gets its identities and points back",
)
async def undo_merge(
    request: Request,
    merge_id: str,
    body: UndoMergeIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await run_once(
        request,
        api,
        caller,
        idempotency_key,
        lambda _key: merge_out(api.stack.undo_merge(merge_id, reason=body.reason)),
    )


@router.post(
    "/{member_id}/opt-outs",
    response_model=OptOutOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Record that the member wants no more messages by a medium (campaigns honour it)",
)
async def opt_out(
    request: Request,
    member_id: str,
    body: AdminOptOutIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def record(_key: str) -> OptOutOut:
        blocks = api.stack.opt_out(member_id, body.medium, source=body.source)
        return OptOutOut(member_id=member_id, medium=body.medium, blocks=blocks)

    return await run_once(request, api, caller, idempotency_key, record)


@router.get(
    "/{member_id}/export",
    response_model=MemberExportOut,
    responses={**READ_PROBLEMS, **_NOT_FOUND},
    summary="Everything held about the member, as one JSON document (a data-subject access request)",
)
def export(member_id: str, caller: Reader, api: ApiDep) -> MemberExportOut:
    return MemberExportOut(**api.stack.export_member(member_id))


@router.post(
    "/{member_id}/erasure",
    response_model=ErasureOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Erase the member: every identifier pseudonymised everywhere, ledgers kept balanced",
)
async def erase(
    request: Request,
    member_id: str,
    body: EraseIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def run(_key: str) -> ErasureOut:
        return ErasureOut(**api.stack.erase_member(member_id, source=f"admin: {body.source}").to_dict())

    return await run_once(request, api, caller, idempotency_key, run)


@router.get(
    "/{member_id}/consents",
    response_model=ConsentsOut,
    responses={**READ_PROBLEMS, **_NOT_FOUND},
    summary="Every consent the member gave or withdrew, oldest first",
)
def consents(member_id: str, caller: Reader, api: ApiDep) -> ConsentsOut:
    return ConsentsOut(consents=[ConsentOut(**row.to_dict()) for row in api.stack.consents(member_id)])


@router.post(
    "/{member_id}/consents",
    response_model=ConsentOut,
    responses={**WRITE_PROBLEMS, **_NOT_FOUND},
    summary="Record the member's consent to a purpose by a medium, or its withdrawal (segments, campaigns honour it)",
)
async def record_consent(
    request: Request,
    member_id: str,
    body: AdminConsentIn,
    caller: Writer,
    api: ApiDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def record(_key: str) -> ConsentOut:
        recorded = api.stack.record_consent(
            member_id, body.purpose, granted=body.granted, source=body.source, medium=body.medium
        )
        return ConsentOut(**recorded.to_dict())

    return await run_once(request, api, caller, idempotency_key, record)
