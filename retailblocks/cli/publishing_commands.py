"""``blocks catalogue``, ``blocks add``, ``blocks remove`` and ``blocks new``: finding, adding and writing blocks.

Each command parses its arguments and prints; the work is done by :mod:`retailblocks.publishing`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape

from retailblocks.cli.support import (
    console,
    fail,
    json_option,
    manifest_option,
    print_json,
    print_table,
    report,
    reporting_errors,
)

F = TypeVar("F", bound=Callable[..., Any])


def catalogue_option() -> Callable[[F], F]:
    decorator: Callable[[F], F] = click.option(
        "--catalogue",
        "catalogues",
        multiple=True,
        metavar="FILE_OR_URL",
        help="Another catalogue to read after the shipped one and $RETAILBLOCKS_CATALOGUE's (repeatable); "
        "its entries replace same-named ones.",
    )
    return decorator


@click.command(name="catalogue")
@click.argument("query", nargs=-1, metavar="[search TERM]")
@catalogue_option()
@json_option("Print the entries as JSON.")
def catalogue_command(query: tuple[str, ...], catalogues: tuple[str, ...], as_json: bool) -> None:
    """List the blocks one can add, or those matching TERM (name, distribution, summary, capability)."""
    from retailblocks.publishing.catalogue import load_catalogue
    from retailblocks.version import CORE_API_VERSION, __version__

    if query and (query[0] != "search" or len(query) != 2 or not query[1].strip()):
        fail("expected `blocks catalogue` or `blocks catalogue search TERM` (one term; quote it if it has spaces)")
    with reporting_errors():
        found = load_catalogue(catalogues)
    entries = found.search(query[1]) if query else list(found.entries.values())
    if as_json:
        print_json([entry.to_data() for entry in entries])
        return
    if not entries:
        console.print(f"no block in the catalogue matches {escape(query[1])!r}")
        return
    print_table(
        f"Blocks for retailblocks {__version__} (core API {CORE_API_VERSION})",
        ["block", "distribution", "capabilities", "core API", "kit", "summary"],
        [
            [
                entry.name,
                entry.distribution,
                ", ".join(entry.capabilities),
                ("" if entry.compatible else "✗ ") + entry.core_api,
                ("✓ " if entry.passes_kit_here else "") + (", ".join(entry.conformance) or "-"),
                entry.summary,
            ]
            for entry in entries
        ],
    )
    if any(not entry.compatible for entry in entries):
        console.print(f"✗: needs another core API than this core's {CORE_API_VERSION}; `blocks add` refuses it")
    if len(found.sources) > 1:
        console.print(f"read: {escape(', '.join(found.sources))}", soft_wrap=True)


def package_source_options(function: F) -> F:
    function = click.option("--no-index", is_flag=True, help="Install only from --find-links, never a package index.")(
        function
    )
    function = click.option(
        "--find-links",
        multiple=True,
        metavar="DIR_OR_URL",
        help="A directory (or page) of wheels to install from, as pip's --find-links (repeatable).",
    )(function)
    decorated: F = click.option(
        "--index-url", metavar="URL", help="The package index to install from, as pip's --index-url."
    )(function)
    return decorated


@click.command(name="add")
@click.argument("name")
@manifest_option()
@click.option("--id", "instance", metavar="ID", help="The instance id in the manifest (default: the block's name).")
@catalogue_option()
@package_source_options
@click.option("--no-install", is_flag=True, help="The distribution is installed already: only add the block.")
@json_option("Print what was done as JSON.")
def add_command(
    name: str,
    manifest: Path,
    instance: str | None,
    catalogues: tuple[str, ...],
    index_url: str | None,
    find_links: tuple[str, ...],
    no_index: bool,
    no_install: bool,
    as_json: bool,
) -> None:
    """Install the catalogue's block NAME into this environment and add it to the manifest, then check it.

    The entry gets the block's default configuration, with a ${VARIABLE} placeholder for each secret (and any
    other required field); the manifest's other lines, comments included, are left as they were.
    """
    from retailblocks.publishing.adding import add_block
    from retailblocks.publishing.catalogue import load_catalogue
    from retailblocks.publishing.install import PackageSources

    with reporting_errors():
        found = load_catalogue(catalogues)
        added = add_block(
            found,
            name,
            manifest,
            sources=PackageSources(index_url, find_links, no_index),
            instance=instance,
            install_package=not no_install,
        )
    if as_json:
        print_json(added.to_data())
    else:
        if added.installer:
            console.print(f"installed {escape(added.distribution)} {escape(added.version)}")
        console.print(
            f"added {escape(added.instance)} to {escape(str(manifest))} (line {added.first_line}):", soft_wrap=True
        )
        for line in added.lines:
            console.print(f"  [green]+[/] {escape(line)}", soft_wrap=True, highlight=False)
        for warning in added.warnings:
            report(warning, label="warning")
    _report_check(manifest, added.check, as_json)


@click.command(name="remove")
@click.argument("name")
@manifest_option()
@json_option("Print what was done as JSON.")
def remove_command(name: str, manifest: Path, as_json: bool) -> None:
    """Take the block NAME (its instance id in the manifest) out of the manifest, then check it.

    The distribution stays installed: another manifest may use it.
    """
    from retailblocks.publishing.adding import remove_block

    with reporting_errors():
        removed = remove_block(name, manifest)
    if as_json:
        print_json(removed.to_data())
    else:
        console.print(f"removed {escape(removed.instance)} from {escape(str(manifest))}:", soft_wrap=True)
        for line in removed.lines:
            console.print(f"  [red]-[/] {escape(line)}", soft_wrap=True, highlight=False)
    _report_check(manifest, removed.check, as_json)


def _report_check(manifest: Path, check: Any, as_json: bool) -> None:
    if check.ok:
        if not as_json:
            console.print(f"[green]✓[/] {escape(str(manifest))} checks (blocks assemble --check)")
        return
    if check.missing_variables:
        if not as_json:
            names = ", ".join(check.missing_variables)
            console.print(
                f"[yellow]![/] set {escape(names)} in the environment, then run "
                f"`blocks assemble -m {escape(str(manifest))}`",
                soft_wrap=True,
            )
        return
    for problem in check.problems[:-1]:
        report(problem)
    fail(f"the manifest was changed, but it does not check: {check.problems[-1]}")


@click.command(name="new")
@click.argument("name")
@click.option(
    "--capability",
    required=True,
    type=click.Choice(["payment", "inventory", "marketing", "membership", "logistics"]),
    help="What the block provides; the project gets a small working block of that kind.",
)
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the project (default: ./retailblocks-NAME); it must not exist or be empty.",
)
@json_option("Print what was written as JSON.")
def new_command(name: str, capability: str, directory: Path | None, as_json: bool) -> None:
    """Write a new block's project NAME: a separate distribution with a working block, tests using the kit,
    README and CI, whose tests pass straight away."""
    from retailblocks.publishing.scaffold import new_project

    with reporting_errors():
        project = new_project(name, capability, directory)
    if as_json:
        print_json(project.to_data())
        return
    console.print(
        f"[green]✓[/] wrote {escape(project.distribution)} ({escape(capability)} block {escape(name)!r}) "
        f"to {escape(str(project.directory))}:",
        soft_wrap=True,
    )
    for file in project.files:
        console.print(f"  {escape(file)}", soft_wrap=True, highlight=False)
    console.print(
        f"next: cd {escape(str(project.directory))} && uv sync && uv run pytest", soft_wrap=True, highlight=False
    )


COMMANDS = [catalogue_command, add_command, remove_command, new_command]
