"""Where each merchant's data lives, decided by the platform and not by the merchant's manifest.

PostgreSQL: one schema per merchant (``m_<id>``) on a named server. Every merchant of one server shares
that server's one connection pool — fifty merchants in two server processes must fit ``max_connections``
— through SQLAlchemy option engines (``engine.execution_options(...)`` shares its parent's pool). Each
transaction of a merchant's engine begins with ``SET LOCAL search_path`` (and, with ``roles: true``,
``SET LOCAL ROLE``): transaction-scoped, so a connection carries nothing from one merchant to the next,
and it stays true through PgBouncer in transaction mode. With roles, each merchant's schema is owned by a
NOLOGIN role of its own and nobody else has any privilege on it, so a query naming another merchant's
table fails in the database (permission denied), whatever a block's code does.

SQLite: one file per merchant in the named directory, each with its own engine (SQLite has no server
connections to spare).
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from retailblocks.errors import EnvironmentFailure
from retailblocks.platform.manifest import DatabaseServer, MerchantEntry, PlatformManifest
from retailblocks.storage.engine import SCOPED_TRANSACTIONS, create_engine
from retailblocks.storage.prepared import execute_control

#: The option a merchant's engine carries, so a connection can say whose transaction it runs.
MERCHANT_OPTION = "retailblocks_merchant"


def quoted(identifier: str) -> str:
    # Merchant ids are checked (lower-case letters, digits, '-'); quoting keeps '-' legal all the same.
    return '"' + identifier.replace('"', '""') + '"'


def scope_statement(schema: str, role: bool) -> str:
    """What every transaction of a merchant begins with: its schema alone on the search path, and its role."""
    statement = f"SET LOCAL search_path TO {quoted(schema)}"
    if role:
        statement += f"; SET LOCAL ROLE {quoted(schema)}"
    return statement


def schema_engine(server: sa.Engine, schema: str, *, role: bool = False) -> sa.Engine:
    """An engine on ``server``'s pool whose every transaction is confined to ``schema`` (and its role)."""
    engine = server.execution_options(**{MERCHANT_OPTION: schema, SCOPED_TRANSACTIONS: True})
    statement = scope_statement(schema, role)

    @event.listens_for(engine, "begin")
    def _confine(connection: sa.Connection) -> None:
        # Sent on the driver's kept cursor, inside the transaction SQLAlchemy is beginning: psycopg opens
        # it with this statement, so no query of the merchant can run before the scope is set.
        execute_control(connection, statement)

    return engine


def prepare_schema(server: sa.Engine, schema: str, *, role: bool) -> None:
    """Create the merchant's schema (and its role, owning it) if missing. Idempotent; safe to race."""
    with server.begin() as connection:
        # Two assemblers creating the same schema at once would collide on the catalog: serialize on a lock
        # named after the schema.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": schema})
        if role:
            exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": schema}).first()
            if exists is None:
                connection.exec_driver_sql(f"CREATE ROLE {quoted(schema)} NOLOGIN")
            # The platform's login must be able to become the merchant (SET ROLE) and to create its schema.
            connection.exec_driver_sql(f"GRANT {quoted(schema)} TO CURRENT_USER")
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)} AUTHORIZATION {quoted(schema)}")
            connection.exec_driver_sql(f"REVOKE ALL ON SCHEMA {quoted(schema)} FROM PUBLIC")
        else:
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted(schema)}")


class Placement:
    """The platform's databases, opened once: one pool per PostgreSQL server, one engine per SQLite file."""

    def __init__(self, platform: PlatformManifest):
        self.platform = platform
        self._servers: dict[str, sa.Engine] = {}
        self._files: dict[str, sa.Engine] = {}
        self._lock = threading.Lock()

    def server(self, database: DatabaseServer) -> sa.Engine:
        """The shared engine of a PostgreSQL server (created on first use)."""
        assert database.url is not None
        with self._lock:
            engine = self._servers.get(database.name)
            if engine is None:
                engine = create_engine(database.url, pool_size=database.pool_size)
                self._servers[database.name] = engine
            return engine

    def merchant_engine(self, merchant: MerchantEntry, database_name: str | None = None) -> sa.Engine:
        """The engine a merchant's stack is assembled on, its schema (or file) created if needed: on
        ``database_name`` (where the platform's registry says it lives), else on its ``database:``."""
        database = self.database(database_name or merchant.database, merchant.id)
        try:
            if database.directory is not None:
                return self._sqlite(database, merchant.id)
            server = self.server(database)
            prepare_schema(server, merchant.schema, role=database.roles)
            return schema_engine(server, merchant.schema, role=database.roles)
        except OSError as error:
            raise EnvironmentFailure(
                f"{self.platform.path}: cannot prepare storage for merchant {merchant.id!r} in "
                f"{database.describe()}: {error.strerror or error}"
            ) from None
        except sa.exc.SQLAlchemyError as error:
            raise EnvironmentFailure(
                f"{self.platform.path}: cannot prepare storage for merchant {merchant.id!r} in "
                f"{database.describe()}: {_reason(error)}"
            ) from None

    def database(self, name: str, merchant_id: str) -> DatabaseServer:
        """The declared database ``name``; a merchant moved to a database since written out of
        ``platform.yaml`` is an error naming both."""
        found = self.platform.databases.get(name)
        if found is None:
            raise EnvironmentFailure(
                f"{self.platform.path}: merchant {merchant_id!r} lives on database {name!r} (moved there), "
                f"which is no longer declared (declared: {', '.join(self.platform.databases)})"
            )
        return found

    def sqlite_file(self, database: DatabaseServer, merchant_id: str) -> sa.Engine:
        """The engine of a merchant's SQLite file in ``database``'s directory (created on first use)."""
        return self._sqlite(database, merchant_id)

    def _sqlite(self, database: DatabaseServer, name: str) -> sa.Engine:
        assert database.directory is not None
        key = f"{database.name}/{name}"
        with self._lock:
            engine = self._files.get(key)
            if engine is None:
                database.directory.mkdir(parents=True, exist_ok=True)
                engine = create_engine(f"sqlite:///{database.directory / f'{name}.db'}", pool_size=database.pool_size)
                self._files[key] = engine
            return engine

    def home_engine(self) -> sa.Engine:
        """Where the platform keeps its own table: the first database's ``rb_platform`` schema, or
        ``_platform.db`` in its directory."""
        home = self.platform.home
        if home.directory is not None:
            return self._sqlite(home, "_platform")  # "_" starts no merchant id
        server = self.server(home)
        with server.begin() as connection:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('rb_platform'))"))
            connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS rb_platform")
        return server

    def forget(self, merchant: MerchantEntry, database_name: str | None = None) -> None:
        """Close a merchant's own engine (SQLite); a PostgreSQL merchant shares its server's."""
        with self._lock:
            engine = self._files.pop(f"{database_name or merchant.database}/{merchant.id}", None)
        if engine is not None:
            engine.dispose()

    def close(self) -> None:
        with self._lock:
            engines = [*self._servers.values(), *self._files.values()]
            self._servers.clear()
            self._files.clear()
        for engine in engines:
            engine.dispose()


def _reason(error: Any) -> str:
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split()) or type(error).__name__
