"""The kit has teeth: every mutant (a reference block with one deliberate bug) fails the kit, on SQLite and
PostgreSQL. The kill-rate table is printed at the end of the run; ``uv run python -m tests.kit.kill_rate``
prints it on its own."""

from __future__ import annotations

import os

import pytest

from retailblocks.testing.databases import POSTGRES_ENV, REQUIRE_POSTGRES_ENV
from tests.kit.kill_rate import Mutant, Outcome, find_mutants, run_all, table

MUTANTS = find_mutants()
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[tuple[str, str], Outcome]:
    """Every mutant run once per available database, two at a time; the table goes to the terminal."""
    on = ["sqlite"]
    if os.environ.get(POSTGRES_ENV):
        on.append("postgresql")
    results = run_all(MUTANTS, on)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in table(results).splitlines():
            reporter.write_line(line)
    return {(o.mutant.name, o.database): o for o in results}


def test_the_suite_covers_the_bugs_the_issue_names() -> None:
    names = {mutant.name for mutant in MUTANTS}
    expected = {
        "MutantOverRefund",
        "MutantDoubleChargeOnOneKey",
        "MutantCaptureAfterVoid",
        "MutantWrongCurrency",
        "MutantIgnoredCurrency",
        "MutantSecretInEvent",
        "MutantSecretInError",
        "MutantReserveBeyondStock",
        "MutantReleaseNotIdempotent",
        "MutantMisspelledHook",
        "MutantMissingHookimpl",
        "MutantWrongArgumentName",
        "MutantNegativePointsBalance",
        "MutantDiscountAboveTheLine",
    }
    assert expected <= names, f"missing mutants: {sorted(expected - names)}"
    assert all(mutant.bug for mutant in MUTANTS), "every mutant says its bug in its docstring"


@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: mutant.name)
def test_the_kit_kills_the_mutant(mutant: Mutant, database: str, outcomes: dict[tuple[str, str], Outcome]) -> None:
    if database == "postgresql" and not os.environ.get(POSTGRES_ENV):
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_ENV} is not set")
        pytest.skip(f"set {POSTGRES_ENV} to run the mutants on PostgreSQL")
    outcome = outcomes[(mutant.name, database)]
    assert outcome.killed, f"{mutant.name} ({mutant.bug}) survived the kit on {database}: {outcome.detail}"
