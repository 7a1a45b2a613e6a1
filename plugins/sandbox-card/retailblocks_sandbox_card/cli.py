"""Operator commands: ``blocks sandbox-card notify`` sends the sandbox gateway's pending notifications."""

from __future__ import annotations

from pathlib import Path

import click

from retailblocks.cli.support import console, fail, json_option, manifest_option, open_stack, print_json


@click.group("sandbox-card")
def sandbox_card_group() -> None:
    """The sandbox card gateway: deliver its notifications of timed-out authorizations."""


@sandbox_card_group.command("notify")
@manifest_option()
@click.option(
    "--url",
    required=True,
    help="The server's base URL (http://127.0.0.1:8000); notifications go to <url>/blocks/<block>/notifications.",
)
@click.option("--block", "block_id", help="The sandbox-card block's id, when the stack has several.")
@json_option()
def notify_command(manifest: Path, url: str, block_id: str | None, as_json: bool) -> None:
    """Send the notifications the sandbox gateway queued for timed-out authorizations, signed with the
    block's callback_secret, as a real gateway would; those the server did not accept are kept for the
    next run. Each tells the server what became of one authorization."""
    from retailblocks_sandbox_card.block import SandboxCard
    from retailblocks_sandbox_card.notify import deliver

    if not url.startswith(("http://", "https://")):
        fail(f"--url must start with http:// or https:// (got {url!r})")
    with open_stack(manifest) as stack:
        chosen = (
            stack.block(block_id)
            if block_id
            else next((b for b in stack.blocks.values() if isinstance(b, SandboxCard)), None)
        )
        if not isinstance(chosen, SandboxCard):
            fail(f"block {chosen.id!r} is not sandbox-card" if chosen else "no sandbox-card block in this stack")
        secret = chosen.config.callback_secret
        if secret is None:
            fail(f"block {chosen.id!r} has no callback_secret: it takes no notifications")
        report = deliver(stack.engine, secret, f"{url.rstrip('/')}/blocks/{chosen.id}/notifications", stack.clock)
    if as_json:
        print_json({"delivered": list(report.delivered), "failed": dict(report.failed)})
    else:
        console.print(f"{len(report.delivered)} notification(s) delivered, {len(report.failed)} left for later")
        for notification_id, why in report.failed.items():
            console.print(f"  {notification_id}: {why}")
    if report.failed:
        raise SystemExit(1)
