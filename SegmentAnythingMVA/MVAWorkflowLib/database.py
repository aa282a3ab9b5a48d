"""Database connection and migrations: SQLite by default, PostgreSQL through the same code.

>>> db = Database("sqlite:///annotations.db")   # or "postgresql+psycopg://mva@127.0.0.1:5432/mva"
>>> db.migrate()                                 # Alembic upgrade to the newest schema
>>> with db.transaction() as session: ...

The PostgreSQL password belongs in `$MVA_DATABASE_PASSWORD` or in a file named by `$MVA_DATABASE_PASSWORD_FILE`
(used when the URL has none), never on a command line, where `ps` shows it to every local user; the URL itself
may come from `$MVA_DATABASE_URL` or `$MVA_DATABASE_URL_FILE`. `Database.display_url` is the URL without its
password, for messages. An SQLite file is created 0600 in a 0700 folder (tightened to 0600 if it exists).
"""
import contextlib
import logging
import os
import stat

from sqlalchemy import String, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker

from MVAWorkflowLib.errors import InvalidInputError
from MVAWorkflowLib.security import read_secret

DEFAULT_URL_ENV = "MVA_DATABASE_URL"
PASSWORD_ENV = "MVA_DATABASE_PASSWORD"
DEFAULT_SQLITE_FILE = "mva-workflow.db"
MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")
_log = logging.getLogger(__name__)


def default_url():
    """`$MVA_DATABASE_URL` (or the file in `$MVA_DATABASE_URL_FILE`), else `./mva-workflow.db` (SQLite)."""
    return read_secret(DEFAULT_URL_ENV) or f"sqlite:///{os.path.abspath(DEFAULT_SQLITE_FILE)}"


def url_has_password(url):
    """True when a database URL carries a password (which must then not be given on a command line)."""
    try:
        return "://" in str(url) and make_url(str(url)).password is not None
    except ArgumentError:
        return False


def hide_password(url):
    """The URL with its password replaced by ***, for messages and logs."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def _private_sqlite_file(path):
    from MVAWorkflowLib.storage import private_folder
    private_folder(os.path.dirname(os.path.abspath(path)))
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077 and os.stat(path).st_uid == os.getuid():
            os.chmod(path, 0o600)
            _log.warning("database file was readable by others (mode %o); now 0600", mode)


def _configure_sqlite_connection(dbapi_connection, _record):
    # SQLAlchemy emits BEGIN itself (below); pysqlite's own implicit transactions are switched off.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def check_string_lengths(session, _flush_context=None, _instances=None):
    """Refuse a text longer than its column before it reaches the database (a SQLAlchemy `before_flush` hook).

    PostgreSQL rejects such a value with a `DataError` that would reach the user as a database failure,
    while SQLite stores it anyway: with this check both refuse it, with a message naming the field.

    Raises
    ------
    InvalidInputError
        A string attribute of a new or changed row is longer than its `String(n)` column.
    """
    for row in list(session.new) + list(session.dirty):
        table = getattr(row, "__table__", None)
        for column in table.columns if table is not None else ():
            limit = getattr(column.type, "length", None) if isinstance(column.type, String) else None
            value = getattr(row, column.key, None)
            if limit and isinstance(value, str) and len(value) > limit:
                raise InvalidInputError(f"The {column.key.replace('_', ' ')} is too long: at most {limit} "
                                        f"characters, got {len(value)} (table {table.name})")


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
        except ArgumentError:
            raise InvalidInputError("Not a database URL: give an SQLite file or a URL such as "
                                    "postgresql+psycopg://user@host:5432/name") from None
        #: the URL as given (without the password when that came from the environment): pass it to other processes
        self.url = url
        #: the URL without any password: for messages
        self.display_url = parsed.render_as_string(hide_password=True)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if not self.is_sqlite and parsed.password is None and read_secret(PASSWORD_ENV):
            parsed = parsed.set(password=read_secret(PASSWORD_ENV))
        options = {"echo": echo, "future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                _private_sqlite_file(parsed.database)
            # Concurrent writers wait for the file lock instead of failing at once.
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            options["pool_pre_ping"] = True
        self.engine = create_engine(parsed, **options)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _configure_sqlite_connection)
            event.listen(self.engine, "begin", _begin_immediate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", check_string_lengths)

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
