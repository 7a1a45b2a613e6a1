"""``blocks members``, ``segments``, ``campaigns``, ``settle`` and ``ingest``: the boundaryless operator commands.

Each reads the fused data after delivering pending events, prints a table (or ``--json``), and reports bad
input as one line with exit status 2, writing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from rich.markup import escape

from retailblocks.cli.support import (
    console,
    fail,
    json_option,
    manifest_option,
    money_data,
    open_stack,
    print_json,
    print_table,
    report,
)
from retailblocks.errors import InvalidValue

if TYPE_CHECKING:
    from retailblocks.fusion.aggregates import AggregateReport
    from retailblocks.fusion.campaigns import Interval, Uplift
    from retailblocks.fusion.memberships import Explanation
    from retailblocks.fusion.segments import Check
    from retailblocks.model import Money

T = TypeVar("T")


def channel_mix_text(mix: Mapping[str, int]) -> str:
    """``web×2, store-a×1`` for a person, never a Python dict."""
    return ", ".join(f"{channel}×{count}" for channel, count in mix.items()) or "none"


def timeline_money(amount: int | None, currency: str | None, render: Callable[[Money], T]) -> T | None:
    """A timeline entry's amount, which the timeline keeps as minor units beside its currency."""
    from retailblocks.model import Money

    if amount is None or currency is None:
        return None
    return render(Money(amount, currency))


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidValue(f"{option} expects a date like 2026-06-01 (got {value!r})") from None


@click.command()
@manifest_option()
@click.option("--member", "member_id", help="A member id.")
@click.option("--identity", metavar="KIND:VALUE", help="Find the member by an identity, e.g. phone:+8613800000000.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True, help="Members listed on one page.")
@click.option("--after", metavar="MEMBER", help="List the members after this member id (the next page).")
@json_option()
def members(
    manifest: Path, member_id: str | None, identity: str | None, limit: int, after: str | None, as_json: bool
) -> None:
    """Members fused across channels, a page at a time by member id; with --member or --identity, one
    member's profile and timeline."""
    from retailblocks.fusion import catch_up, member_view
    from retailblocks.fusion.views import profile_page

    if member_id and identity:
        fail("give --member or --identity, not both")
    with open_stack(manifest) as stack:
        catch_up(stack)
        with stack.context(flow="report", read_only=True) as ctx:
            if member_id is None and identity is None:
                page = profile_page(stack, ctx, after=after, limit=limit)
                found = page.profiles
                if as_json:
                    print_json([p.to_data(money_data) for p in found.values()])
                    return
                shown = f"{len(found)} of {page.total}" if len(found) < page.total else str(page.total)
                print_table(
                    f"Members ({shown})",
                    ["member", "tier", "points", "orders", "spend", "recency (days)", "channels", "segments"],
                    [
                        [
                            p.member_id,
                            p.tier,
                            p.points,
                            p.orders,
                            p.monetary,
                            p.recency_days,
                            channel_mix_text(p.channel_mix),
                            ", ".join(p.segments),
                        ]
                        for p in found.values()
                    ],
                )
                if page.next_after is not None:
                    console.print(f"more members follow: --after {page.next_after}")
                return
            profile, entries = member_view(stack, ctx, member_id=member_id, identity=identity)
    if as_json:
        data = profile.to_data(money_data)
        data["timeline"] = [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "channel": e.channel,
                "source": e.source,
                "order_id": e.order_id,
                "amount": timeline_money(e.amount, e.currency, money_data),
                "identity": e.identity,
                "detail": dict(e.detail),
            }
            for e in entries
        ]
        print_json(data)
        return
    console.print(
        f"[bold]member {profile.member_id}[/] — {profile.tier}, {profile.points} points, {profile.orders} orders, "
        f"spend {profile.monetary}, identities {', '.join(profile.identities) or 'none'}"
    )
    console.print(
        f"segments: {', '.join(profile.segments) or 'none'}; channel mix: {channel_mix_text(profile.channel_mix)}"
    )
    print_table(
        "Timeline",
        ["at", "kind", "channel", "order", "amount", "source"],
        [
            [
                e.at.isoformat(timespec="seconds"),
                e.kind,
                e.channel,
                e.order_id,
                timeline_money(e.amount, e.currency, str),
                e.source,
            ]
            for e in entries
        ],
    )


@click.command()
@manifest_option()
@click.argument("action", required=False, type=click.Choice(["explain", "rebuild"]))
@click.argument("names", nargs=-1, metavar="[SEGMENT MEMBER]")
@click.option("--segment", "segment_id", help="Show the members of one segment.")
@click.option(
    "--check",
    is_flag=True,
    help="With rebuild: recompute the kept aggregates from the raw orders and report every difference, "
    "writing nothing (exit status 1 if any).",
)
@json_option()
def segments(
    manifest: Path, action: str | None, names: tuple[str, ...], segment_id: str | None, check: bool, as_json: bool
) -> None:
    """The manifest's segments and how many members each holds now.

    `explain SEGMENT MEMBER` says why a member (an id, or an identity such as phone:+8613800000000) is in
    the segment or not: each condition with the member's figure and the threshold. `rebuild` recomputes
    every membership from the raw orders and signals and reports where the kept answers differed.
    """
    if action == "explain" and len(names) != 2:
        fail("`blocks segments explain` needs the segment's id and the member (an id or kind:value)")
    if action != "explain" and names:
        fail(f"unexpected arguments: {' '.join(names)}")
    if check and action != "rebuild":
        fail("--check goes with `blocks segments rebuild`")
    with open_stack(manifest) as stack:
        if action == "explain":
            explanation = stack.explain_segment(names[0], names[1])
            if as_json:
                print_json(explanation.to_data())
            else:
                _print_explanation(explanation)
            return
        if action == "rebuild" and check:
            checked = stack.check_aggregates()
            if as_json:
                print_json(checked.to_data())
            else:
                _print_aggregates(checked)
            if checked.differences:
                raise SystemExit(1)
            return
        if action == "rebuild":
            rebuilt = stack.rebuild_segments()
            if as_json:
                print_json(rebuilt.to_data())
            else:
                console.print(
                    f"segments rebuilt from {rebuilt.orders} orders of {rebuilt.members} members: "
                    f"{len(rebuilt.facts_changed)} orders' facts and {len(rebuilt.memberships_changed)} "
                    "memberships differed from what was kept"
                )
                if rebuilt.aggregates is not None:
                    _print_aggregates(rebuilt.aggregates)
                if rebuilt.memberships_changed:
                    print_table(
                        "Memberships corrected",
                        ["segment", "member", "was", "now"],
                        [
                            [c.segment, c.member_id, "in" if c.was else "out", "in" if c.now else "out"]
                            for c in rebuilt.memberships_changed
                        ],
                    )
            return
        rows = stack.segment_members(segment_id)
        descriptions = {s.id: s.description for s in stack.manifest.segments}
    if as_json:
        print_json({segment: {"members": ids, "count": len(ids)} for segment, ids in rows.items()})
    elif segment_id:
        print_table(
            f"Segment {segment_id} ({len(rows[segment_id])} members)", ["member"], [[m] for m in rows[segment_id]]
        )
    else:
        print_table(
            "Segments",
            ["segment", "members", "description"],
            [[s, len(ids), descriptions[s]] for s, ids in rows.items()],
        )


def _print_aggregates(report: AggregateReport) -> None:
    rows = ", ".join(f"{count} {table.removeprefix('fusion_')}" for table, count in report.rows.items())
    verb = "rebuilt" if report.written else "checked"
    console.print(f"aggregates {verb} ({rows}): {len(report.differences)} rows differed from what was kept")
    if report.differences:
        print_table(
            "Aggregate rows that differed",
            ["table", "key", "kept", "from the raw data"],
            [[d.table, d.key, _short(d.kept), _short(d.rebuilt)] for d in report.differences[:50]],
        )
        if len(report.differences) > 50:
            console.print(f"… and {len(report.differences) - 50} more (--json lists every one)")


def _short(row: Mapping[str, object] | None) -> str:
    if row is None:
        return "none"
    return ", ".join(f"{k}={v}" for k, v in row.items() if k not in {"member_id", "campaign", "partner", "order_id"})


def _print_explanation(explanation: Explanation) -> None:
    verdict = "is in" if explanation.member else "is not in"
    console.print(
        f"member [bold]{explanation.member_id}[/] {verdict} segment [bold]{explanation.segment}[/] "
        f"as of {explanation.as_of.isoformat(timespec='seconds')}"
    )
    rows: list[list[object]] = []

    def walk(check: Check, depth: int) -> None:
        rows.append(["  " * depth + check.condition, check.figure, check.threshold, "yes" if check.holds else "no"])
        for inner in check.checks:
            walk(inner, depth + 1)

    walk(explanation.check, 0)
    print_table("Conditions", ["condition", "member's figure", "threshold", "holds"], rows)


@click.command()
@manifest_option()
@click.argument("action", required=False, type=click.Choice(["run", "report"]))
@click.argument("campaign_id", required=False, metavar="CAMPAIGN")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    help="With report: list at most this many orders (all counted).",
)
@json_option()
def campaigns(manifest: Path, action: str | None, campaign_id: str | None, limit: int | None, as_json: bool) -> None:
    """List the manifest's campaigns; `run CAMPAIGN` issues its coupons and sends its message, `report CAMPAIGN`
    shows what it brought: redemptions, messages and, with a holdout, the uplift over it."""
    if action is not None and campaign_id is None:
        fail(f"`blocks campaigns {action}` needs the campaign's id")
    with open_stack(manifest) as stack:
        if action is None:
            listed = [
                {
                    "id": c.id,
                    "segment": c.segment,
                    "promotion": c.promotion,
                    "channel": c.channel,
                    "message": c.message.medium if c.message else "",
                    "holdout": f"{c.holdout_bp / 100:g}%" if c.holdout_bp else "",
                    "dates": f"{c.starts or '…'} – {c.ends or '…'}" if c.starts or c.ends else "",
                    "description": c.description,
                }
                for c in stack.manifest.campaigns
            ]
            if as_json:
                print_json(listed)
            else:
                print_table(
                    "Campaigns",
                    ["campaign", "segment", "promotion", "channel", "message", "holdout", "dates", "description"],
                    [list(c.values()) for c in listed],
                )
            return
        assert campaign_id is not None
        if action == "run":
            run = stack.run_campaign(campaign_id)
            if as_json:
                print_json(
                    {
                        "campaign": run.campaign,
                        "segment_size": run.segment_size,
                        "issued": run.issued,
                        "reach": run.reach,
                        "held_out": run.held_out,
                        "messages": run.messages,
                    }
                )
            else:
                messages = ", ".join(f"{count} {outcome}" for outcome, count in run.messages.items())
                console.print(
                    f"campaign [bold]{run.campaign}[/]: {run.segment_size} members in the segment, "
                    f"{run.issued} coupons issued now, {run.reach} members reached in all, {run.held_out} held out"
                    + (f"; messages: {messages}" if messages else "")
                )
            return
        report = stack.campaign_report(campaign_id, limit=limit)
    if as_json:
        print_json(report.to_data(money_data))
        return
    console.print(
        f"campaign [bold]{report.campaign}[/] ({report.promotion} via {report.channel}): reach {report.reach}, "
        f"{report.redemptions} orders, revenue {report.revenue}, discount "
        + (", ".join(f"{f} {a}" for f, a in report.discount_by_funder.items()) or "none")
    )
    if report.messages:
        console.print("messages: " + ", ".join(f"{count} {outcome}" for outcome, count in report.messages.items()))
    if report.uplift is not None:
        _print_uplift(report.uplift)
    print_table(
        "Orders that used the campaign's coupons",
        ["order", "member", "channel", "coupon", "revenue", "discount by funder"],
        [
            [
                o.order_id,
                o.member_id,
                o.channel,
                o.coupon,
                o.revenue,
                ", ".join(f"{f} {a}" for f, a in o.discount_by_funder.items()),
            ]
            for o in report.orders
        ],
    )


def _print_uplift(uplift: Uplift) -> None:
    def interval(found: Interval | None, scale: float, unit: str) -> str:
        if found is None:
            return "too few members to tell"
        return f"95% interval {found.low * scale:+.2f}{unit} to {found.high * scale:+.2f}{unit}"

    print_table(
        "Uplift over the holdout (intent to treat)",
        ["", "treated", "holdout", "difference", ""],
        [
            [
                "members who bought",
                f"{uplift.treated_buyers}/{uplift.treated} ({uplift.conversion_treated:.1%})",
                f"{uplift.holdout_buyers}/{uplift.holdout} ({uplift.conversion_holdout:.1%})",
                f"{uplift.conversion_uplift * 100:+.2f} points",
                interval(uplift.conversion_interval, 100, " points"),
            ],
            [
                "revenue per member (minor units)",
                f"{uplift.revenue_per_member_treated:.2f}",
                f"{uplift.revenue_per_member_holdout:.2f}",
                f"{uplift.revenue_per_member_uplift:+.2f}",
                interval(uplift.revenue_interval, 1, ""),
            ],
        ],
    )


@click.command("opt-out")
@manifest_option()
@click.argument("member_id", metavar="MEMBER")
@click.argument("medium")
@click.option("--source", required=True, help="Where the member said so: 'replied STOP', 'call 2026-06-01'.")
@json_option()
def opt_out(manifest: Path, member_id: str, medium: str, source: str, as_json: bool) -> None:
    """Record that a member wants no more messages by MEDIUM (mini_program, sms, email or push); campaigns
    honour it."""
    with open_stack(manifest) as stack:
        blocks = stack.opt_out(member_id, medium, source=source)
    if as_json:
        print_json({"member_id": member_id, "medium": medium, "blocks": blocks})
    else:
        console.print(f"member {escape(member_id)} opted out of {medium} (recorded by {', '.join(blocks)})")


@click.command()
@manifest_option()
@click.argument("member_id", metavar="MEMBER")
@click.argument("purpose", required=False)
@click.argument("decision", required=False, type=click.Choice(["grant", "withdraw"]))
@click.option("--medium", default="any", show_default=True, help="mini_program, sms, email, push, or any.")
@click.option("--source", help="Where the member said so: 'signup form v3', 'call 2026-06-01'.")
@json_option()
def consent(
    manifest: Path,
    member_id: str,
    purpose: str | None,
    decision: str | None,
    medium: str,
    source: str | None,
    as_json: bool,
) -> None:
    """A member's consents: without PURPOSE, their history; with PURPOSE (marketing, profiling, sharing)
    and grant or withdraw, record it (segments and campaigns honour it)."""
    if purpose is not None and (decision is None or not source):
        raise click.UsageError("recording a consent needs PURPOSE, grant or withdraw, and --source")
    with open_stack(manifest) as stack:
        if purpose is None:
            rows = [row.to_dict() for row in stack.consents(member_id)]
        else:
            granted = decision == "grant"
            rows = [
                stack.record_consent(member_id, purpose, granted=granted, source=source or "", medium=medium).to_dict()
            ]
    if as_json:
        print_json(rows if purpose is None else rows[0])
        return
    for row in rows:
        word = "granted" if row["granted"] else "withdrew"
        console.print(
            f"{escape(row['at'])}  {escape(row['member_id'])} {word} {row['purpose']} by {row['medium']} "
            f"({escape(row['source'])})"
        )


@click.command()
@manifest_option()
@click.argument("action", type=click.Choice(["export", "erase"]))
@click.argument("member_id", metavar="MEMBER")
@click.option("--source", help="erase: who asked and how (a ticket number, 'the DPO, by letter').")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="export: write the document here."
)
@json_option()
def privacy(
    manifest: Path, action: str, member_id: str, source: str | None, output: Path | None, as_json: bool
) -> None:
    """Data-subject requests: `export` everything held about MEMBER as one JSON document, or `erase`
    MEMBER (every identifier pseudonymised in every table and stored event; ledgers stay balanced)."""
    if action == "erase" and not source:
        raise click.UsageError("blocks privacy erase needs --source: who asked for the erasure, and how")
    with open_stack(manifest) as stack:
        if action == "export":
            document = stack.export_member(member_id)
        else:
            erasure = stack.erase_member(member_id, source=source or "")
    if action == "export":
        if output is not None:
            output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            console.print(f"wrote everything held about {escape(document['member']['id'])} to {escape(str(output))}")
        else:
            print_json(document)
    elif as_json:
        print_json(erasure.to_dict())
    else:
        console.print(
            f"member {escape(erasure.member_id)} erased: {erasure.identifiers} identifiers replaced by tokens, "
            f"{erasure.core_rows} rows of the core changed"
        )


@click.command()
@manifest_option()
@click.option("--partner", required=True, help="The partner's id, as the manifest's `partners:` names it.")
@click.option("--from", "start", required=True, metavar="DATE", help="First day of the period (YYYY-MM-DD).")
@click.option("--to", "end", required=True, metavar="DATE", help="Last day of the period, included.")
@json_option()
def settle(manifest: Path, partner: str, start: str, end: str, as_json: bool) -> None:
    """Who owes whom with a partner for a period: funded discounts, clawbacks and points exchanged, per order."""
    from retailblocks.fusion import settle as build_settlement
    from retailblocks.fusion.settlement import period

    with open_stack(manifest) as stack:
        first, last = _day(start, "--from"), _day(end, "--to")
        period(first, last)  # refuses a period that ends before it starts, before any work
        settlement = build_settlement(stack, partner, first, last)
        data = settlement.to_data(stack.currency, money_data)
        shown = settlement.to_data(stack.currency)
    if as_json:
        print_json(data)
        return
    console.print(
        f"[bold]settlement with {partner}[/] {start} … {end}: {partner} owes {shown['partner_owes_merchant']}, "
        f"the merchant owes {shown['merchant_owes_partner']}; net [bold]{shown['net']}[/] "
        "(positive: the partner pays the merchant)"
    )
    print_table(
        "Lines",
        ["at", "kind", "reference", "member", "amount", "detail"],
        [
            [line.at.isoformat(timespec="seconds"), line.kind, line.reference, line.member_id, line.amount, line.detail]
            for line in settlement.lines
        ],
    )


@click.command()
@manifest_option()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), help="Default: from the file's extension.")
@json_option()
def ingest(manifest: Path, file: Path, fmt: str | None, as_json: bool) -> None:
    """Bring external signals (social, marketplace, store visits) from JSON Lines or CSV into members' timelines.

    Every bad line, whatever is wrong with it, is reported as FILE:LINE: reason and skipped; the good
    lines are added together in one transaction. Exit status 2 if any line was bad. Ingesting the same
    file again adds nothing.
    """
    from retailblocks.fusion.ingest import format_of, read_bytes

    with open_stack(manifest) as stack:
        outcome = stack.ingest_signals(read_bytes(file), format_of(file, fmt))
    for line in outcome.bad:
        # report() escapes: a reason quotes the line, and "[/x]" in a line is text, not markup.
        report(f"{file}:{line.line}: {line.reason}")
    summary = {
        "read": outcome.read,
        "added": outcome.added,
        "duplicates": outcome.duplicates,
        "resolved": outcome.resolved,
        "bad": [{"line": b.line, "reason": b.reason} for b in outcome.bad],
    }
    if as_json:
        if outcome.bad:
            summary["error"] = {
                "type": "InvalidInput",
                "message": f"{len(outcome.bad)} bad lines in {file}; the good lines were added",
                "exit_status": 2,
            }
        print_json(summary)
    else:
        console.print(
            f"{outcome.added} signals added, {outcome.duplicates} already there, "
            f"{outcome.resolved} matched to members, {len(outcome.bad)} bad lines"
        )
    if outcome.bad:
        raise SystemExit(2)


COMMANDS = [members, segments, campaigns, opt_out, consent, privacy, settle, ingest]
