"""A block's pip requirement on retailblocks follows from its core_api, and a requirement that disagrees is
named by ``blocks plugins`` and ``blocks assemble``."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from retailblocks.assembly.discovery import discover
from retailblocks.errors import InvalidInput
from retailblocks.publishing import compat
from retailblocks.version import CORE_API_RELEASES, CORE_API_VERSION, __version__
from tests.cli.harness import blocks, copy_example


def test_the_table_covers_the_running_core() -> None:
    releases = compat.core_api_releases()
    assert CORE_API_VERSION in releases
    assert all(str(release) == CORE_API_RELEASES.get(api, __version__) for api, release in releases.items())
    assert compat.api_provided_by(compat.parse_version(__version__) or pytest.fail("bad version")) == CORE_API_VERSION


@pytest.mark.parametrize("api", ["1.0", "1.1", "1.2"])
def test_the_requirement_admits_exactly_the_releases_whose_core_api_runs_the_block(api: str) -> None:
    requirement = compat.core_requirement(api)
    assert requirement == "retailblocks>=0.1.0,<1"
    assert compat.metadata_disagreements("b", api, SpecifierSet(requirement.removeprefix("retailblocks"))) == []


def test_a_core_api_no_release_provides_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"no known release of retailblocks provides core API 1\.99"):
        compat.core_requirement("1.99")
    with pytest.raises(InvalidInput, match=r"not 'major\.minor'"):
        compat.core_requirement("one")


def test_the_core_api_range_of_a_block() -> None:
    assert compat.core_api_range("1.1") == ">=1.1,<2"
    assert compat.api_range_admits(">=1.1,<2", "1.2")
    assert not compat.api_range_admits(">=1.3,<2", "1.2")
    assert not compat.api_range_admits(">=2.0,<3", "1.2")


def test_requirements_that_disagree_with_the_core_api_are_named() -> None:
    unbounded = compat.metadata_disagreements("b", "1.1", SpecifierSet(">=0.1"))
    assert len(unbounded) == 1
    assert "admits retailblocks 1 and its new core API major; require retailblocks>=0.1.0,<1" in unbounded[0]

    excluding = compat.metadata_disagreements("b", "1.1", SpecifierSet(">=0.2,<1"))
    assert len(excluding) == 1
    assert f"excludes this retailblocks {__version__}, though its core API 1.1 runs on" in excluding[0]

    missing = compat.metadata_disagreements("b", "1.1", None)
    assert "declares no requirement on retailblocks" in missing[0]


def test_a_requirement_admitting_a_core_too_old_for_the_block_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # A later world: 0.2.0 brought core API 1.3, and a block written for 1.3 still requires >=0.1.
    earlier = {version: release for version, release in CORE_API_RELEASES.items() if version < "1.3"}
    monkeypatch.setattr(compat, "CORE_API_RELEASES", {**earlier, "1.3": "0.2.0"})
    monkeypatch.setattr(compat, "CORE_API_VERSION", "1.3")
    monkeypatch.setattr(compat, "__version__", "0.2.0")
    assert compat.core_requirement("1.3") == "retailblocks>=0.2.0,<1"
    assert compat.core_requirement("1.1") == "retailblocks>=0.1.0,<1"
    problems = compat.metadata_disagreements("qr", "1.3", SpecifierSet(">=0.1,<1"))
    assert problems == [
        "block 'qr' requires retailblocks<1,>=0.1, which admits retailblocks 0.1.0 with core API 1.2, but it targets "
        "core API 1.3: pip would install it where blocks assemble refuses it; require retailblocks>=0.2.0,<1"
    ]


def test_the_reference_blocks_agree() -> None:
    for name, info in discover({}).items():
        assert info.block_class is not None
        assert compat.installed_disagreements(name, info.distribution, info.block_class.core_api) == [], name


def test_plugins_and_assemble_warn_about_a_disagreeing_block(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    # sandbox-card's metadata requires retailblocks>=0.1,<1; pretend it required a core newer than this one.
    real = compat.core_requirement_of
    monkeypatch.setattr(
        compat,
        "core_requirement_of",
        lambda distribution: (
            SpecifierSet(">=0.5,<1") if distribution == "retailblocks-sandbox-card" else real(distribution)
        ),
    )
    listed = blocks("plugins")
    assert listed.status == 0
    assert "warning: block 'sandbox-card' requires retailblocks<1,>=0.5, which excludes this retailblocks" in (
        " ".join(listed.stderr.split())
    )
    assert "sql-inventory" not in listed.stderr

    from pathlib import Path

    manifest = copy_example("corner-shop", Path(str(tmp_path)))
    checked = blocks("assemble", "--check", "-m", manifest)
    assert checked.status == 0, checked.stderr
    assert "warning: block 'sandbox-card' requires retailblocks<1,>=0.5" in " ".join(checked.stderr.split())
