"""``blocks hooks``: the hook reference, read off the specifications of the installed core."""

from __future__ import annotations

import click

from retailblocks.cli.support import json_option, print_json
from retailblocks.errors import suggestion


@click.command()
@click.option(
    "--capability",
    metavar="CAPABILITY",
    help="Only the hooks of one capability: inventory, payment, membership, logistics, marketing or lifecycle.",
)
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the reference as Markdown (what the docs use).")
@json_option("Print the hooks as JSON.")
def hooks(capability: str | None, as_markdown: bool, as_json: bool) -> None:
    """Every hook a block can implement: name, capability, dispatch, whether required, signature, docs.

    Generated from the hook specifications, so it always matches the installed core.
    """
    # Imported here: ``blocks --help`` lists this command without loading the contracts (and pluggy).
    from retailblocks.hookspecs.reference import capabilities, hook_reference, markdown, text

    known = capabilities()
    if capability is not None and capability not in known:
        raise click.BadParameter(
            f"{capability!r} is not one of {', '.join(known)}{suggestion(capability, known)}",
            param_hint="'--capability'",
        )
    found = hook_reference(capability)
    if as_json:
        print_json([hook.as_json() for hook in found])
    elif as_markdown:
        click.echo(markdown(found), nl=False)
    else:
        click.echo(text(found), nl=False)


COMMANDS = [hooks]
