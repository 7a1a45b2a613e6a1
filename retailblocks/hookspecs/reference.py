"""The hook reference, generated from the specifications: what ``blocks hooks`` prints and the docs publish.

Everything here is read off the specifications themselves (their markers, signatures and docstrings),
so the reference cannot drift from the contract. Arguments that mean the same in every hook that takes
them (``ctx``, ``idempotency_key``…) are described once, in :data:`SHARED_ARGUMENTS`; every other
argument is described in its hook's docstring, written as ````name````.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from retailblocks.hookspecs import SPEC_MODULES, contract_of, specifications

#: Arguments several hooks take, each with the one meaning it has in all of them.
SHARED_ARGUMENTS: dict[str, str] = {
    "ctx": (
        "The step's FlowContext: the merchant, the channel, the clock and ids, ``ctx.db`` (the step's "
        "connection, shared by every block in the step) and ``ctx.record`` for events."
    ),
    "idempotency_key": (
        "Derived by the core from the flow (``ctx.key_for``): a retry or a recovery passes the same key, "
        "so the same key must give the same result and never act twice."
    ),
    "member_id": "The member the call is about, as the membership block knows them; None for a guest.",
    "order_id": "The order the call is about (the checkout's flow id).",
    "authorization": "A payment authorization this block made; the core routes the call to its ``block``.",
    "method": "The payment method (``card``, ``wallet``…); the core routes the call to the block serving it.",
    "reservation_id": "The id of a reservation :func:`inventory_reserve` returned.",
    "shipment": "A shipment this block arranged; the core routes the call to its ``block``.",
    "stack": "What the block may read of its stack: merchant, currency, catalog and channels.",
    "key": "An idempotency key: the same key must give the same result and never act twice.",
}

_VERSION_ADDED = re.compile(r"^\s*\.\. versionadded:: (?P<version>\d+\.\d+)\s*$", re.MULTILINE)
_VERSION_CHANGED = re.compile(r"^\s*\.\. versionchanged:: (?P<version>\d+\.\d+)\s*(?P<note>.*)$", re.MULTILINE)
_DIRECTIVE = re.compile(r"^\s*\.\. version(added|changed)::.*$\n?", re.MULTILINE)


@attrs.frozen
class HookReference:
    """One hook specification as the reference shows it."""

    name: str
    #: The capability whose contract declares it, or ``lifecycle``.
    capability: str
    #: How the core dispatches it: ``one provider``, ``routed`` or ``every block``.
    dispatch: str
    #: Whether a block that provides the capability must implement it.
    required: bool
    #: For routed hooks, the argument that names the answering block.
    route: str | None
    signature: str
    #: The docstring without its version directives.
    doc: str
    #: The core API version that added the hook; "1.0" when the docstring names none.
    version_added: str
    #: ``(version, what changed)`` from each ``.. versionchanged::`` directive, oldest first.
    changes: tuple[tuple[str, str], ...]
    arguments: tuple[str, ...]

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n", 1)[0].replace("\n", " ").strip()

    def undocumented_arguments(self) -> list[str]:
        """Arguments neither shared nor named as ````arg```` in the docstring."""
        return [name for name in self.arguments if name not in SHARED_ARGUMENTS and f"``{name}``" not in self.doc]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "capability": self.capability,
            "dispatch": self.dispatch,
            "required": self.required,
            "route": self.route,
            "signature": self.signature,
            "summary": self.summary,
            "doc": self.doc,
            "version_added": self.version_added,
            "changes": [{"version": version, "change": change} for version, change in self.changes],
        }


def reference_of(name: str, capability: str, spec: Callable[..., Any]) -> HookReference:
    raw = inspect.getdoc(spec) or ""
    added = _VERSION_ADDED.search(raw)
    marker = contract_of(spec)
    signature = inspect.signature(spec, eval_str=False)
    return HookReference(
        name=name,
        capability=capability,
        dispatch=str(marker.dispatch),
        required=marker.required,
        route=marker.route,
        signature=f"{name}{_plain(signature)}",
        doc=_DIRECTIVE.sub("", raw).strip(),
        version_added=added["version"] if added else "1.0",
        changes=tuple((found["version"], found["note"].strip()) for found in _VERSION_CHANGED.finditer(raw)),
        arguments=tuple(signature.parameters),
    )


def _plain(signature: inspect.Signature) -> str:
    # Annotations are strings (``from __future__ import annotations``): show them as written.
    parameters = [
        f"{name}: {parameter.annotation}" if parameter.annotation is not inspect.Parameter.empty else name
        for name, parameter in signature.parameters.items()
    ]
    returned = signature.return_annotation
    tail = f" -> {returned}" if returned is not inspect.Signature.empty else ""
    return f"({', '.join(parameters)}){tail}"


def hook_reference(capability: str | None = None) -> list[HookReference]:
    """Every hook specification, by capability (lifecycle first) then name; only ``capability``'s if given."""
    found = []
    for module_capability, module in SPEC_MODULES.items():
        if capability is not None and str(module_capability) != capability:
            continue
        for name, spec in sorted(specifications(module).items()):
            found.append(reference_of(name, str(module_capability), spec))
    return found


def capabilities() -> list[str]:
    return [str(capability) for capability in SPEC_MODULES]


def markdown(hooks: Sequence[HookReference], *, title: str = "Hook reference") -> str:
    """The reference as Markdown: the shared arguments, then one section per capability and hook."""
    lines = [
        f"# {title}",
        "",
        "Generated from the hook specifications in `retailblocks/hookspecs/` (`blocks hooks --markdown`).",
        "A block implements a hook by defining a method of the same name marked `@hookimpl`; it may accept",
        "fewer arguments than the specification (pluggy passes only those it names), never others.",
        "",
        "## Arguments shared by many hooks",
        "",
    ]
    lines.extend(f"- `{name}`: {_markdown_text(text)}" for name, text in SHARED_ARGUMENTS.items())
    current = None
    for hook in hooks:
        if hook.capability != current:
            current = hook.capability
            lines += ["", f"## {current}", ""]
        lines += [
            f"### `{hook.name}`",
            "",
            "```python",
            hook.signature,
            "```",
            "",
            f"- dispatch: {hook.dispatch}" + (f" (by `{hook.route}`)" if hook.route else ""),
            f"- required of a {hook.capability} provider: {'yes' if hook.required else 'no'}"
            if hook.capability != "lifecycle"
            else "- required: no (lifecycle hooks are optional)",
            f"- added in core API {hook.version_added}",
            *(f"- changed in core API {version}: {_markdown_text(change)}" for version, change in hook.changes),
            "",
            _markdown_text(hook.doc),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _markdown_text(doc: str) -> str:
    """reST roles as Markdown code: ``:class:`~a.b.C``` and ``:func:`f``` become ``C`` and ``f``."""
    return re.sub(r":(?:class|func|meth|data|mod|attr):`~?([^`]+)`", lambda m: f"``{m[1].split('.')[-1]}``", doc)


def text(hooks: Iterable[HookReference]) -> str:
    """The reference as plain text for a terminal."""
    out = []
    for hook in hooks:
        flags = [hook.capability, hook.dispatch + (f" by {hook.route}" if hook.route else "")]
        if hook.required:
            flags.append("required")
        flags.append(f"since {hook.version_added}")
        flags.extend(f"changed in {version}: {_markdown_text(change)}" for version, change in hook.changes)
        out += [hook.signature, f"    [{', '.join(flags)}]"]
        out += [f"    {line}".rstrip() for line in _markdown_text(hook.doc).splitlines()]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


__all__ = ["SHARED_ARGUMENTS", "HookReference", "capabilities", "hook_reference", "markdown", "reference_of", "text"]
