"""``blocks new``: a new block's project — a separate distribution that installs, assembles and passes the kit.

The project is rendered from the files under ``templates/`` (package data): ``common/`` for every capability
(pyproject with the ``retailblocks`` entry point and the requirement on retailblocks derived from the core API,
README, CI workflow, .gitignore) and one directory per capability (the block and its tests). In paths and
texts, ``{{token}}`` is replaced; a path part ``__package__`` is the package's name and ``dot-x`` is ``.x``;
``.tmpl`` is dropped. The project is written to a temporary directory beside the target and moved into place
whole, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path

import attrs

from retailblocks.errors import EnvironmentFailure, InvalidInput
from retailblocks.publishing.compat import core_requirement
from retailblocks.version import CORE_API_VERSION

CAPABILITIES = ("payment", "inventory", "marketing", "membership", "logistics")
#: Instance ids the core gives its own blocks: a block of that name could never be assembled.
RESERVED = frozenset({"core", "fusion", "connectors"})
MAX_NAME_LENGTH = 40

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_TOKEN = re.compile(r"\{\{(\w+)\}\}")

SUMMARIES = {
    "payment": "Payments on account: authorize, capture, refund and void, idempotent per key",
    "inventory": "Stock per location with reservations that never oversell",
    "marketing": "A spend-and-save rule: money off orders from a threshold",
    "membership": "Members identified across channels, with a points ledger that never goes negative",
    "logistics": "Flat-rate delivery quotes and shipments, idempotent per key",
}

CAPABILITY_NOTES = {
    "payment": (
        'The block answers the payment method `{method}`: a shopper pays with `{{"account": "..."}}` '
        "(`blocks checkout --pay {method}::account=acct-1`). Accounts listed in `blocked_accounts` are declined."
    ),
    "inventory": (
        "Stock arrives with `inventory_adjust` (a delivery, a count) at a location; reservations hold units "
        "until the order commits or the reservation is released or expires."
    ),
    "marketing": (
        "Orders whose lines reach `threshold` get `discount` off, split over the lines in proportion, never "
        "more than what earlier blocks left of a line. With `coupon` set, the rule applies only with that code, "
        "and `coupon_uses` limits how many orders may use it."
    ),
    "membership": (
        "Shoppers are identified by phone or e-mail on any channel; orders earn `points_per_unit` points per "
        "whole unit of money spent, refunds take their share back, and no balance ever goes below zero."
    ),
    "logistics": (
        "Every delivery to `countries` is quoted `rate` (free from `free_from`); shipments are booked once per key, "
        "tracked, and cancelled until they leave. Carry-out and pickup are left to other blocks."
    ),
}

#: Each capability's required configuration in the README's manifest example (the secret as a variable).
CONFIG_EXAMPLES = {
    "payment": ["signing_key: ${{{env}_SIGNING_KEY}}", "blocked_accounts: []"],
    "inventory": ["ledger_key: ${{{env}_LEDGER_KEY}}", "locations: [store-1]"],
    "marketing": ["ledger_key: ${{{env}_LEDGER_KEY}}", 'threshold: "100.00 CNY"', 'discount: "10.00 CNY"'],
    "membership": ["ledger_key: ${{{env}_LEDGER_KEY}}", "points_per_unit: 1"],
    "logistics": ["ledger_key: ${{{env}_LEDGER_KEY}}", 'rate: "12.00 CNY"', "countries: [CN]"],
}


@attrs.frozen
class NewProject:
    name: str
    capability: str
    directory: Path
    distribution: str
    package: str
    class_name: str
    files: tuple[str, ...]

    def to_data(self) -> dict[str, object]:
        return {
            "name": self.name,
            "capability": self.capability,
            "directory": str(self.directory),
            "distribution": self.distribution,
            "package": self.package,
            "class": self.class_name,
            "files": list(self.files),
            "core_api": CORE_API_VERSION,
            "requires": core_requirement(CORE_API_VERSION),
        }


def check_name(name: str) -> None:
    """Refuse a block name that could not be an entry-point name, an SQL prefix and a package, or is taken."""
    if not _NAME.match(name):
        raise InvalidInput(
            f"block name {name!r} must be lower-case letters and digits in words joined by single '-', starting "
            "with a letter (such as 'qr-wallet')"
        )
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"block name {name!r} is longer than {MAX_NAME_LENGTH} characters (its tables' names grow)")
    if name in RESERVED:
        raise InvalidInput(f"block name {name!r} is the id of one of the core's own blocks; pick another")
    if name.startswith("retailblocks"):
        raise InvalidInput(f"block name {name!r}: leave out 'retailblocks' (the distribution is retailblocks-NAME)")
    installed = {point.name: point for point in metadata.entry_points(group="retailblocks")}
    if name in installed:
        owner = installed[name].dist
        raise InvalidInput(
            f"block name {name!r} is taken by the installed distribution {owner.name if owner else '?'}; "
            "two blocks of one name cannot be installed together"
        )


def project_names(name: str) -> dict[str, str]:
    words = name.split("-")
    return {
        "name": name,
        "distribution": f"retailblocks-{name}",
        "package": "retailblocks_" + "_".join(words),
        "class_name": "".join(word.capitalize() for word in words),
        "table_prefix": "_".join(words),
        "env_prefix": "_".join(words).upper(),
        "method": "_".join(words),
        "id_prefix": "".join(word[0] for word in words)[:4] or "b",
    }


def new_project(name: str, capability: str, directory: Path | None = None) -> NewProject:
    """Write the project of a new block ``name`` providing ``capability`` into ``directory`` (default:
    ``./retailblocks-NAME``), which must not exist or be empty."""
    if capability not in CAPABILITIES:
        raise InvalidInput(f"capability {capability!r} is not one of {', '.join(CAPABILITIES)}")
    check_name(name)
    names = project_names(name)
    target = (directory if directory is not None else Path(names["distribution"])).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"{target} exists and is not an empty directory; nothing was written")
    tokens = {
        **names,
        "capability": capability,
        "core_api": CORE_API_VERSION,
        "core_requirement": core_requirement(CORE_API_VERSION),
        "summary": SUMMARIES[capability],
        "capability_notes": CAPABILITY_NOTES[capability].format(method=names["method"]),
        "config_example": "\n".join(
            "      " + line.format(env=names["env_prefix"]) for line in CONFIG_EXAMPLES[capability]
        ),
    }
    templates = resources.files("retailblocks.publishing").joinpath("templates")
    files: dict[str, str] = {}
    for source in ("common", capability):
        _collect(templates.joinpath(source), "", tokens, files)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as error:
        raise EnvironmentFailure(f"cannot write into {target.parent}: {error.strerror or error}") from None
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise EnvironmentFailure(f"cannot write {target}: {error.strerror or error}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return NewProject(
        name=name,
        capability=capability,
        directory=target,
        distribution=names["distribution"],
        package=names["package"],
        class_name=names["class_name"],
        files=tuple(sorted(files)),
    )


def _collect(node: Traversable, prefix: str, tokens: Mapping[str, str], into: dict[str, str]) -> None:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        part = _render(child.name, tokens)
        if part == "__package__":
            part = tokens["package"]
        if part.startswith("dot-"):
            part = "." + part.removeprefix("dot-")
        part = part.removesuffix(".tmpl")
        relative = f"{prefix}{part}"
        if child.is_dir():
            if child.name != "__pycache__":
                _collect(child, relative + "/", tokens, into)
        elif child.name.endswith(".tmpl"):
            into[relative] = _render(child.read_text(encoding="utf-8"), tokens)


def _render(text: str, tokens: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token not in tokens:
            raise KeyError(f"template token {{{{{token}}}}} has no value")
        return tokens[token]

    return _TOKEN.sub(replace, text)
