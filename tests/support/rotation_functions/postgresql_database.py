"""PostgreSQL for the rotation functions, through pg8000 (pure Python).

Passwords go into statements as literals quoted by pg8000 (`ALTER ROLE`
takes no bind parameters) and user names as quoted identifiers.

Connections are plain TCP: the test databases are local. AWS's own
functions try TLS first and fall back only when the secret allows it.
"""

import pg8000.native
from pg8000.exceptions import DatabaseError
from pg8000.native import identifier, literal

ENGINES = ("postgres",)
DEFAULT_DBNAME = "postgres"
DEFAULT_PORT = 5432
MAX_USERNAME_LENGTH = 63
CONNECT_TIMEOUT_SECONDS = 5

# SQLSTATEs of a refused sign-in: wrong password (or no such role, which
# PostgreSQL reports the same way), and a role that may not log in.
_REFUSED = {"28P01", "28000"}


def sign_in(settings):
    """A connection as the settings' user, or None when the server refuses
    the credentials. An unreachable server raises: no other password helps."""
    try:
        return pg8000.native.Connection(
            user=settings["username"],
            password=settings["password"],
            host=settings["host"],
            port=settings["port"],
            database=settings["dbname"],
            timeout=CONNECT_TIMEOUT_SECONDS,
        )
    except DatabaseError as error:
        if _sqlstate(error) in _REFUSED:
            return None
        raise


def _sqlstate(error):
    details = error.args[0] if error.args else None
    return details.get("C") if isinstance(details, dict) else None


def run_trivial_query(connection):
    connection.run("SELECT now()")


def set_own_password(connection, username, password):
    connection.run(f"ALTER ROLE {identifier(username)} WITH PASSWORD {literal(password)}")


def ensure_user_like(connection, model_user, username, password):
    """Signed in as the master user: `username` exists, can log in with
    `password`, and holds `model_user`'s privileges through membership."""
    exists = connection.run("SELECT 1 FROM pg_roles WHERE rolname = :name", name=username)
    if not exists:
        connection.run(f"CREATE ROLE {identifier(username)} WITH LOGIN PASSWORD {literal(password)}")
        connection.run(f"GRANT {identifier(model_user)} TO {identifier(username)}")
    else:
        connection.run(f"ALTER ROLE {identifier(username)} WITH LOGIN PASSWORD {literal(password)}")
