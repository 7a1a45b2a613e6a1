"""``blocks assemble``, ``blocks plugins`` and ``blocks schema``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from retailblocks.cli.support import (
    assemble_stack,
    console,
    error_console,
    json_option,
    manifest_option,
    print_json,
    print_table,
    report,
    reporting_errors,
)
from retailblocks.errors import EnvironmentFailure

if TYPE_CHECKING:
    from retailblocks.assembly.plan import Plan
    from retailblocks.hookspecs.blocks import Block


@click.command()
@manifest_option()
@click.option("--check", is_flag=True, help="Validate only: prepare no storage and write no lock file.")
@json_option("Print the stack as JSON.")
def assemble(manifest: Path, check: bool, as_json: bool) -> None:
    """Assemble the manifest: validate it, prepare storage, write blocks.lock."""
    from retailblocks.assembly.describe import describe_plan
    from retailblocks.assembly.lockfile import write_lock
    from retailblocks.assembly.routing import deprecated_implementations
    from retailblocks.stack import plan

    with reporting_errors():
        if check:
            the_plan = plan(manifest)
            lock_path = None
        else:
            stack = assemble_stack(manifest)
            try:
                the_plan = stack.plan
                try:
                    lock_path = write_lock(the_plan)
                except OSError as error:
                    raise EnvironmentFailure(
                        f"{manifest}: cannot write blocks.lock beside it: {error.strerror or error}"
                    ) from None
            finally:
                stack.close()
    described = describe_plan(the_plan)
    warn_about_requirements((b.info.name, b.info.distribution, b.info.block_class) for b in the_plan.blocks)
    if as_json:
        print_json(described)
        return
    show_stack(described)
    show_permissions(the_plan)
    for warning in deprecated_implementations(the_plan.plugin_manager, the_plan.blocks):
        error_console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if lock_path is None:
        console.print(f"[green]✓[/] {escape(str(manifest))} is valid (checked only: nothing written)")
    else:
        console.print(
            f"[green]✓[/] stack assembled; storage ready at {escape(described['database'])}; "
            f"wrote {escape(str(lock_path))}",
            soft_wrap=True,
        )


def warn_about_requirements(blocks: Iterable[tuple[str, str, type[Block] | None]]) -> None:
    """A warning on stderr for each block whose pip requirement on retailblocks disagrees with its core_api
    (retailblocks.publishing.compat): pip and ``blocks assemble`` would not agree which core it runs on."""
    from retailblocks.publishing.compat import installed_disagreements

    seen: set[str] = set()
    for name, distribution, block_class in blocks:
        if block_class is None or name in seen:
            continue
        seen.add(name)
        for problem in installed_disagreements(name, distribution, block_class.core_api):
            report(problem, label="warning")


def show_stack(described: dict[str, Any]) -> None:
    merchant = described["merchant"]
    console.print(
        f"[bold]{escape(merchant['name'])}[/] ({merchant['id']}, {merchant['currency']}) — "
        f"core {described['core']['version']} (API {described['core']['api']})"
    )
    print_table(
        "Channels",
        ["channel", "type", "location"],
        [[c["id"], c["type"], c["location"] or ""] for c in described["channels"]],
    )
    print_table(
        "Blocks",
        ["id", "block", "distribution", "version", "capabilities", "config"],
        [
            [
                b["id"],
                b["use"],
                b["distribution"],
                b["version"],
                ", ".join(b["capabilities"]) or "-",
                b["config_fingerprint"][:12],
            ]
            for b in described["blocks"]
        ],
    )
    hooks = described["routing"]["hooks"]
    print_table(
        "Which block answers which hook",
        ["hook", "dispatch", "blocks"],
        [
            [hook, info["dispatch"], ", ".join(info["blocks"])]
            for hook, info in hooks.items()
            if not hook.startswith("stack_")
        ],
    )
    methods = described["routing"]["payment_methods"]
    if methods:
        print_table("Payment methods", ["method", "block"], [[m, b] for m, b in methods.items()])
    show_marketing_policy(described["routing"].get("marketing"))


def show_marketing_policy(policy: dict[str, Any] | None) -> None:
    """How the marketing blocks' adjustments combine: one row per block, in the order they apply."""
    if not policy or not policy["order"]:
        return
    group_of = {member: index for index, group in enumerate(policy["best_of"]) for member in group}
    rows = []
    for position, block_id in enumerate(policy["order"], start=1):
        if block_id in policy["exclusive"]:
            how = f"exclusive (said by {policy['exclusive'][block_id]}): alone, or the others, whichever gives more"
        elif block_id in group_of:
            others = [m for m in policy["best_of"][group_of[block_id]] if m != block_id]
            how = f"best of {block_id}, {', '.join(others)}: only the largest discount applies"
        else:
            how = "combines with the blocks before it"
        rows.append([str(position), block_id, how])
    print_table(f"Marketing stacking (order: {policy['order_from']})", ["#", "block", "combines"], rows)


def show_permissions(the_plan: Plan) -> None:
    """Each block's table permissions beside what a scan of its code found it writing and reading, and what
    it uses outside them (a warning each: the guard refuses it in tests, assembly goes on)."""
    from retailblocks.assembly.permissions import block_permissions, describe_permissions

    reports = block_permissions(the_plan)
    rows = []
    for block_report in reports:
        permissions = block_report.as_dict()
        rows.append(
            [
                block_report.block_id,
                *describe_permissions(permissions),
                _own_or_named(permissions, list(block_report.writes)),
                _own_or_named(permissions, list(block_report.reads)),
            ]
        )
    print_table("Table permissions", ["id", "owns", "reads core tables", "code writes", "code reads"], rows)
    for block_report in reports:
        for finding in block_report.findings:
            console.print(f"[yellow]![/] block {escape(block_report.block_id)}: {escape(finding)}", soft_wrap=True)


def _own_or_named(permissions: dict[str, Any], tables: list[str]) -> str:
    """``own (7)`` for the block's own tables, and the others by name: what to look at is what stands out."""
    owns, prefix = set(permissions["owns"]), permissions["owns_prefix"]
    own = [t for t in tables if t in owns or t.startswith(prefix)]
    others = [t for t in tables if t not in own]
    parts = [f"own ({len(own)})"] if own else []
    return ", ".join(parts + others) or "-"


def hook_names(cls: type[Any]) -> list[str]:
    """The hooks a block class implements, read from its markers without instantiating it."""
    from retailblocks.hookspecs import PROJECT

    marker = f"{PROJECT}_impl"
    return sorted(name for name in dir(cls) if hasattr(getattr(cls, name, None), marker))


@click.command()
@json_option()
def plugins(as_json: bool) -> None:
    """List installed blocks: distribution, version, capabilities, hooks and table permissions."""
    from retailblocks.assembly.discovery import discover
    from retailblocks.assembly.permissions import class_permissions, describe_permissions

    rows = []
    for info in discover().values():
        entry: dict[str, Any] = {
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "target": info.target,
        }
        if info.block_class is None:
            entry["error"] = info.error
        else:
            cls = info.block_class
            hooks = hook_names(cls)
            from retailblocks.publishing.compat import installed_disagreements

            entry.update(
                requirement_warnings=installed_disagreements(info.name, info.distribution, cls.core_api),
                core_api=cls.core_api,
                capabilities=sorted(str(c) for c in cls.capabilities),
                payment_methods=list(cls.payment_methods),
                hooks=hooks,
                description=cls.description,
                permissions=class_permissions(cls),
            )
        rows.append(entry)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        for problem in row.get("requirement_warnings", ()):
            report(problem, label="warning")
    print_table(
        "Installed blocks",
        ["block", "distribution", "version", "core API", "capabilities", "hooks"],
        [
            [
                r["name"],
                r["distribution"],
                r["version"],
                r.get("core_api", "?"),
                ", ".join(r.get("capabilities", [])) or "-",
                r["error"] if "error" in r else f"{len(r['hooks'])} hooks",
            ]
            for r in rows
        ],
    )
    # Like an app's permissions: what each block may write (its own tables) and which core tables it reads.
    print_table(
        "Table permissions",
        ["block", "owns", "reads core tables"],
        [[r["name"], *describe_permissions(r["permissions"])] for r in rows if "permissions" in r],
    )


@click.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@json_option("The schema is JSON either way.")
def schema(output: Path | None, as_json: bool) -> None:
    """Print the JSON Schema (draft 2020-12) of blocks.yaml, with every installed block's configuration."""
    from retailblocks.assembly.discovery import discover
    from retailblocks.manifest import manifest_json_schema

    configs = {name: info.block_class.Config for name, info in discover().items() if info.block_class is not None}
    text = json.dumps(manifest_json_schema(configs), indent=2, sort_keys=True)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")


COMMANDS = [assemble, plugins, schema]
