"""Database connection and migrations: SQLite by default, PostgreSQL through the same code.

>>> db = Database("sqlite:///annotations.db")   # or "postgresql+psycopg://user:pw@127.0.0.1:5432/mva"
>>> db.migrate()                                 # Alembic upgrade to the newest schema
>>> with db.transaction() as session: ...
"""
import contextlib
import os

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker

from MVAWorkflowLib.errors import InvalidInputError

DEFAULT_URL_ENV = "MVA_DATABASE_URL"
DEFAULT_SQLITE_FILE = "mva-workflow.db"
MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def default_url():
    """`$MVA_DATABASE_URL`, else an SQLite file `mva-workflow.db` in the current folder."""
    return os.environ.get(DEFAULT_URL_ENV) or f"sqlite:///{os.path.abspath(DEFAULT_SQLITE_FILE)}"


def _configure_sqlite_connection(dbapi_connection, _record):
    # SQLAlchemy emits BEGIN itself (below); pysqlite's own implicit transactions are switched off.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection):
    # Take the write lock at BEGIN: two writers then queue up (busy timeout) instead of one failing with
    # "database is locked" when both try to upgrade a read lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine plus a session factory.

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL. Default: `default_url()`. A bare file path is taken as an SQLite file.
    echo : bool
        Log SQL statements.

    Raises
    ------
    InvalidInputError
        The URL cannot be parsed.
    """

    def __init__(self, url=None, echo=False):
        url = url or default_url()
        if "://" not in url:
            url = f"sqlite:///{os.path.abspath(url)}"
        try:
            parsed = make_url(url)
        except ArgumentError as error:
            raise InvalidInputError(f"Not a database URL: {url!r} ({error})") from None
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        options = {"echo": echo, "future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
            # Concurrent writers wait for the file lock instead of failing at once.
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            options["pool_pre_ping"] = True
        self.engine = create_engine(url, **options)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _configure_sqlite_connection)
            event.listen(self.engine, "begin", _begin_immediate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def sqlite_folder(self):
        """Folder of the SQLite file (None for PostgreSQL or in-memory SQLite): default place for case files."""
        database = make_url(self.url).database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        return os.path.dirname(os.path.abspath(database))

    def migrate(self, revision="head"):
        """Bring the schema to `revision` with the Alembic migrations shipped in this package."""
        from alembic import command
        from alembic.config import Config
        config = Config()
        config.set_main_option("script_location", MIGRATIONS_DIR)
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def is_initialised(self):
        """True when the schema has been created (the `users` table exists)."""
        return inspect(self.engine).has_table("users")

    def new_session(self):
        """A plain SQLAlchemy session (caller commits and closes)."""
        return self._sessions()

    @contextlib.contextmanager
    def transaction(self):
        """A session inside one transaction: committed on success, rolled back on any exception."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    def dispose(self):
        """Close every pooled connection."""
        self.engine.dispose()
