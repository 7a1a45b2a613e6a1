"""The reach-sandbox block: messages recorded instead of sent, opt-outs honoured, failures simulated."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import sqlalchemy as sa

from retailblocks import Block, Capability, FlowContext, hookimpl, secret_field
from retailblocks.context import AuditFinding
from retailblocks.errors import InvalidValue
from retailblocks.hookspecs.reach import MEDIUMS, DeliveryStatus, ReachDelivery, ReachMessage
from retailblocks.model import Member
from retailblocks.storage import InsertIfAbsent, Migration, PreparedQuery, pseudonymise
from retailblocks_reach_sandbox.tables import MIGRATIONS, deliveries, opt_outs

#: The identity kinds each medium reaches a member by, in order of preference.
ADDRESS_KINDS: dict[str, tuple[str, ...]] = {
    "sms": ("phone",),
    "email": ("email",),
    "mini_program": ("openid",),
    # An app's push registration is tied to the account the app signed in with: here, the openid.
    "push": ("openid",),
}
MIN_API_KEY_LENGTH = 16


def _api_key(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or len(value) < MIN_API_KEY_LENGTH:
        raise InvalidValue(
            f"{attribute.name!r} must be a string of at least {MIN_API_KEY_LENGTH} characters "
            "(the value given is not shown because it is a secret)"
        )


def _mediums(_instance: Any, attribute: Any, value: Any) -> None:
    unknown = [medium for medium in value if medium not in MEDIUMS]
    if not value or unknown:
        raise InvalidValue(f"{attribute.name!r} must list mediums among {', '.join(MEDIUMS)} (got {list(value)!r})")


def _percent(_instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise InvalidValue(f"{attribute.name!r} must be a whole number from 0 to 100 (got {value!r})")


@attrs.frozen
class ReachSandboxConfig:
    """Configuration of ``reach-sandbox``; only ``api_key`` is required."""

    api_key: str = secret_field(
        validator=_api_key,
        metadata={"help": "the messaging account's key; signs each delivery's reference"},
    )
    mediums: tuple[str, ...] = attrs.field(
        default=MEDIUMS,
        converter=tuple,
        validator=_mediums,
        metadata={"help": f"the mediums this account sends by, among {', '.join(MEDIUMS)}"},
    )
    failure_percent: int = attrs.field(
        default=0,
        validator=_percent,
        metadata={"help": "the share of messages the provider fails (drawn from each request's key)"},
    )


_FIND = PreparedQuery(sa.select(deliveries).where(deliveries.c.key == sa.bindparam("key")))
_OPTED_OUT = PreparedQuery(
    sa.select(opt_outs.c.member_id).where(
        opt_outs.c.member_id == sa.bindparam("member_id"), opt_outs.c.medium == sa.bindparam("medium")
    )
)
_RECORD = InsertIfAbsent(deliveries, [c.name for c in deliveries.columns])
_OPT_OUT = InsertIfAbsent(opt_outs, [c.name for c in opt_outs.columns])


class ReachSandbox(Block):
    """Messages by SMS, e-mail, mini-program or push, recorded in the sandbox's tables instead of sent."""

    name = "reach-sandbox"
    owns_tables: ClassVar[tuple[str, ...]] = ("reach_sandbox_deliveries", "reach_sandbox_opt_outs")
    reads_core_tables: ClassVar[tuple[str, ...]] = ()
    capabilities = frozenset({Capability.REACH})
    core_api = "1.4"
    Config = ReachSandboxConfig
    description = "A messaging sandbox: messages recorded, opt-outs honoured, failures simulated."
    config: ReachSandboxConfig

    def __init__(self, config: ReachSandboxConfig, *, block_id: str | None = None):
        super().__init__(config, block_id=block_id)
        self.reach_mediums = config.mediums

    @hookimpl
    def stack_migrations(self) -> Sequence[Migration]:
        return MIGRATIONS

    @hookimpl
    def reach_send(self, ctx: FlowContext, message: ReachMessage, idempotency_key: str) -> ReachDelivery | None:
        if message.medium not in self.config.mediums:
            return None
        found = _FIND.first_mapping(ctx.db, {"key": idempotency_key})
        if found is not None:
            if (found["member_id"], found["medium"]) != (message.member.id, message.medium):
                raise InvalidValue(f"idempotency key {idempotency_key!r} was used for another message")
            return self._delivery(found)
        address = _address(message.member, message.medium)
        if _OPTED_OUT.first_mapping(ctx.db, {"member_id": message.member.id, "medium": message.medium}):
            status, reason = DeliveryStatus.OPTED_OUT, f"the member opted out of {message.medium}"
        elif address is None:
            kinds = " or ".join(ADDRESS_KINDS[message.medium])
            status, reason = DeliveryStatus.NO_ADDRESS, f"the member has no {kinds} identity"
        elif self._fails(idempotency_key):
            status, reason = DeliveryStatus.FAILED, "the provider failed to send (simulated)"
        else:
            status, reason = DeliveryStatus.SENT, ""
        row = {
            "key": idempotency_key,
            "member_id": message.member.id,
            "medium": message.medium,
            "address_digest": self._sign("address", address or ""),
            "campaign": message.campaign,
            "text": message.text,
            "status": str(status),
            "reference": self._sign("reference", idempotency_key)[:24] if status is DeliveryStatus.SENT else "",
            "reason": reason,
            "at": ctx.clock.now(),
        }
        if not _RECORD(ctx.db, row):
            # A concurrent call with the same key recorded its delivery first: that one is the answer.
            raced = _FIND.first_mapping(ctx.db, {"key": idempotency_key})
            assert raced is not None
            return self._delivery(raced)
        ctx.record(
            f"reach.{status}",
            {"medium": message.medium, "campaign": message.campaign, "reference": row["reference"], "reason": reason},
            member_id=message.member.id,
        )
        return self._delivery(row)

    @hookimpl
    def reach_opt_out(self, ctx: FlowContext, member_id: str, medium: str, source: str) -> bool | None:
        if medium not in self.config.mediums:
            return None
        row = {"member_id": member_id, "medium": medium, "source": source[:200], "at": ctx.clock.now()}
        if _OPT_OUT(ctx.db, row):
            ctx.record("reach.opted_out", {"medium": medium, "source": row["source"]}, member_id=member_id)
        return True

    @hookimpl
    def stack_erase_member(self, ctx: FlowContext, member_id: str, replacements: Mapping[str, str]) -> None:
        """The texts sent are pseudonymised like any text; an address is kept only as a keyed digest, which
        still singles the person out, so the member's digests become the digest of the token."""
        pseudonymise(ctx.db, [deliveries, opt_outs], replacements)
        for old, new in replacements.items():
            ctx.db.execute(
                deliveries.update()
                .where(deliveries.c.member_id == member_id, deliveries.c.address_digest == self._sign("address", old))
                .values(address_digest=self._sign("address", new))
            )

    @hookimpl
    def stack_audit(self, ctx: FlowContext) -> Sequence[AuditFinding]:
        """No message went to a member after they opted out of its medium, and every sent one is signed."""
        rows = ctx.db.execute(sa.select(deliveries)).mappings().all()
        opted = {(r.member_id, r.medium): r.at for r in ctx.db.execute(sa.select(opt_outs)).all()}
        after_opt_out = [
            r["key"]
            for r in rows
            if r["status"] == DeliveryStatus.SENT
            and (when := opted.get((r["member_id"], r["medium"]))) is not None
            and r["at"] > when
        ]
        unsigned = [
            r["key"]
            for r in rows
            if r["status"] == DeliveryStatus.SENT
            and not hmac.compare_digest(r["reference"], self._sign("reference", r["key"])[:24])
        ]
        return [
            AuditFinding(
                f"{self.id}: no message sent after an opt-out", not after_opt_out, ", ".join(after_opt_out[:5])
            ),
            AuditFinding(f"{self.id}: every sent message is signed", not unsigned, ", ".join(unsigned[:5])),
        ]

    # --- helpers ----------------------------------------------------------------------------------

    def _delivery(self, row: Any) -> ReachDelivery:
        return ReachDelivery(
            block=self.id,
            medium=row["medium"],
            status=DeliveryStatus(row["status"]),
            reference=row["reference"],
            reason=row["reason"],
        )

    def _fails(self, key: str) -> bool:
        draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
        return draw < self.config.failure_percent

    def _sign(self, purpose: str, text: str) -> str:
        return hmac.new(self.config.api_key.encode(), f"{purpose}:{text}".encode(), hashlib.sha256).hexdigest()


def _address(member: Member, medium: str) -> str | None:
    for kind in ADDRESS_KINDS[medium]:
        for identity in member.identities:
            if identity.kind == kind:
                return identity.value
    return None
