"""Every hook is documented where it is declared, and the reference and the changelog agree with the code.

The hook reference (``blocks hooks``, the docs site) is generated from the specifications, so what is
checked here is the specifications themselves: a summary, every argument described (in the docstring as
````name````, or once for all hooks in ``SHARED_ARGUMENTS``), and a ``.. versionadded::`` for each hook
newer than core API 1.0 that docs/core-api-changelog.md lists under that version.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from retailblocks.cli import cli
from retailblocks.hookspecs import SPECIFICATIONS, capability_of
from retailblocks.hookspecs.reference import SHARED_ARGUMENTS, HookReference, hook_reference, markdown
from retailblocks.version import CORE_API_VERSION

ROOT = Path(__file__).resolve().parents[2]
HOOKS = {hook.name: hook for hook in hook_reference()}


def version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def changelog_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "core-api-changelog.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (\d+\.\d+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_reference_holds_every_specification() -> None:
    assert set(HOOKS) == set(SPECIFICATIONS)
    assert all(hook.capability == capability_of(hook.name) for hook in HOOKS.values())


@pytest.mark.parametrize("name", sorted(SPECIFICATIONS))
def test_every_hook_has_a_summary_sentence(name: str) -> None:
    summary = HOOKS[name].summary
    assert len(summary) >= 20 and summary.rstrip().endswith((".", ")")), f"{name}: {summary!r}"


@pytest.mark.parametrize("name", sorted(SPECIFICATIONS))
def test_every_argument_of_every_hook_is_described(name: str) -> None:
    assert HOOKS[name].undocumented_arguments() == []


def test_shared_arguments_are_arguments_of_some_hook() -> None:
    used = {argument for hook in HOOKS.values() for argument in hook.arguments}
    assert set(SHARED_ARGUMENTS) <= used


def test_a_missing_description_is_found() -> None:
    hook = HookReference("x_y", "x", "routed", False, None, "x_y(ctx, colour)", "Do it.", "1.0", (), ("ctx", "colour"))
    assert hook.undocumented_arguments() == ["colour"]


@pytest.mark.parametrize("name", sorted(SPECIFICATIONS))
def test_every_version_note_is_a_released_version_listed_in_the_changelog(name: str) -> None:
    hook = HOOKS[name]
    sections = changelog_sections()
    for noted in (hook.version_added, *(changed for changed, _ in hook.changes)):
        assert version(noted) <= version(CORE_API_VERSION), f"{name}: {noted} is newer than the core"
        assert f"`{name}" in sections.get(noted, ""), f"{name} is not listed under {noted} in the changelog"


def test_the_changelog_lists_hooks_only_under_the_version_that_added_or_changed_them() -> None:
    for section, text in changelog_sections().items():
        for name in set(re.findall(r"`([a-z]+_[a-z_]+)", text)) & set(HOOKS):
            hook = HOOKS[name]
            assert section in (hook.version_added, *(changed for changed, _ in hook.changes)), (
                f"the changelog lists {name} under {section}; its docstring says {hook.version_added}"
            )


def test_the_changelog_has_a_section_for_the_current_version() -> None:
    assert CORE_API_VERSION in changelog_sections()


def test_blocks_hooks_prints_every_hook_as_markdown() -> None:
    result = CliRunner().invoke(cli, ["hooks", "--markdown"])
    assert result.exit_code == 0, result.output
    assert result.output == markdown(hook_reference())
    for name in SPECIFICATIONS:
        assert f"### `{name}`" in result.output


def test_blocks_hooks_shows_one_capability_with_its_markers() -> None:
    result = CliRunner().invoke(cli, ["hooks", "--capability", "payment", "--json"])
    assert result.exit_code == 0, result.output
    hooks = {hook["name"]: hook for hook in json.loads(result.output)}
    assert set(hooks) == {name for name in SPECIFICATIONS if name.startswith("payment_")}
    assert hooks["payment_authorize"]["dispatch"] == "routed" and hooks["payment_authorize"]["required"] is True
    assert hooks["payment_authorize"]["route"] == "method"
    assert hooks["payment_balance"]["version_added"] == "1.1" and hooks["payment_balance"]["required"] is False
    assert hooks["payment_capture"]["signature"].startswith("payment_capture(ctx: FlowContext, authorization:")


def test_blocks_hooks_refuses_an_unknown_capability_with_a_suggestion() -> None:
    result = CliRunner().invoke(cli, ["hooks", "--capability", "paymnt"])
    assert result.exit_code == 2
    assert "did you mean 'payment'?" in result.output
