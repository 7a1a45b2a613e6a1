"""The lifecycle contract: migrations, stack_check, stack_audit, secrets and events."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from retailblocks.assembly.references import declared_names
from retailblocks.context import AuditFinding
from retailblocks.hookspecs import lifecycle
from retailblocks.storage import create_engine, migrate
from retailblocks.storage.tables import CORE_MIGRATIONS
from retailblocks.testing.contracts._base import Contract, secret_leaks, secrets_of
from retailblocks.testing.databases import fresh_database
from retailblocks.testing.harness import BlockHarness


class LifecycleContract(Contract):
    """Migrations that are idempotent and run one version at a time; ``stack_check`` and ``stack_audit``
    answering what their specifications promise; no value of ``environ`` in events, error messages,
    ``repr(block)`` or log records; an event for every step that changes the block's tables.

    The checks run over :meth:`exercise`, which performs the block's state changes (and calls it must
    refuse). Combined with a capability contract (``class TestMine(PaymentContract, LifecycleContract)``)
    the capability contract's exercise is used."""

    def exercise(self, harness: BlockHarness) -> None:
        pytest.fail(
            f"{type(self).__name__}: define exercise(harness), making the block's state changes through "
            "harness.call (or combine LifecycleContract with the contract of the block's capability)"
        )

    def migrations(self, harness: BlockHarness) -> list[object]:
        if not harness.implements(lifecycle.stack_migrations):
            return []
        return list(harness.call(lifecycle.stack_migrations))

    def test_migrating_again_is_a_no_op(self, harness: BlockHarness, database_url: str) -> None:
        self.exercise(harness)
        before = harness.snapshot()
        migrations = self.migrations(harness)
        changes = migrate(harness.engine, {harness.block.name: migrations})  # type: ignore[dict-item]
        assert changes.get(harness.block.name, (len(migrations),) * 2) == (len(migrations),) * 2, changes
        assert harness.snapshot() == before, "migrating an up-to-date database changed the block's tables"
        # Assembling again, as `blocks assemble` does on every deploy, keeps everything.
        again = self.make_harness(database_url)
        try:
            assert again.snapshot() == before, "assembling again on the same database changed the block's tables"
        finally:
            again.close()

    def test_migrations_run_one_version_at_a_time(
        self, harness: BlockHarness, database_url: str, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        migrations = self.migrations(harness)
        kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
        with fresh_database(kind, tmp_path_factory.mktemp("migrations")) as url:
            engine = create_engine(url)
            try:
                migrate(engine, {"core": CORE_MIGRATIONS})
                for reached in range(1, len(migrations) + 1):
                    # Each version as an older release of the block left it, then once more: a no-op.
                    for _ in range(2):
                        migrate(engine, {harness.block.name: migrations[:reached]})  # type: ignore[dict-item]
            finally:
                engine.dispose()
            upgraded = self.make_harness(url)
            try:
                assert set(upgraded.block_tables()) == set(harness.block_tables())
                self.exercise(upgraded)
            finally:
                upgraded.close()

    def test_stack_check_answers_sentences(self, harness: BlockHarness) -> None:
        if not harness.implements(lifecycle.stack_check):
            pytest.skip("the block has no stack_check")
        manifest = harness.stack.manifest
        names = declared_names(manifest, harness.stack.plugin_manager.hook.stack_names())
        found = harness.call(lifecycle.stack_check, merchant=manifest.merchant, channels=manifest.channels, names=names)
        assert isinstance(found, Sequence) and not isinstance(found, str), f"stack_check answered {found!r}"
        assert all(isinstance(problem, str) for problem in found), found
        assert list(found) == [], f"stack_check finds problems in the contract's own configuration: {found}"

    def test_stack_audit_answers_findings_that_hold(self, harness: BlockHarness) -> None:
        if not harness.implements(lifecycle.stack_audit):
            pytest.skip("the block has no stack_audit")
        self.exercise(harness)
        with harness.context(None, flow="audit") as ctx:
            findings = harness.call(lifecycle.stack_audit, ctx)
        assert isinstance(findings, Sequence), f"stack_audit answered {findings!r}"
        assert all(isinstance(finding, AuditFinding) for finding in findings), findings
        failed = [f"{finding.name}: {finding.detail}" for finding in findings if not finding.ok]
        assert not failed, f"the block's own audit fails after the exercise: {failed}"

    def test_secrets_never_show(self, harness: BlockHarness, caplog: pytest.LogCaptureFixture) -> None:
        if not secrets_of(self.environ):
            pytest.skip("the contract's environ holds no secret to hunt for")
        caplog.set_level(logging.DEBUG)
        self.exercise(harness)
        leaks = secret_leaks(self.environ, harness, caplog.records)
        assert not leaks, "a secret from `environ` showed: " + "; ".join(leaks)

    def test_every_state_change_records_an_event(self, harness: BlockHarness) -> None:
        with harness.watching() as steps:
            self.exercise(harness)
        changing = [step for step in steps if step.changed_tables]
        assert changing, "the exercise changed none of the block's tables"
        silent = [f"{', '.join(step.changed_tables)} (flow {step.flow})" for step in changing if not step.events]
        assert not silent, f"steps changed the block's tables without recording an event: {silent}"


__all__ = ["LifecycleContract"]
