"""MySQL and MariaDB for the rotation functions, through PyMySQL (pure
Python; MariaDB speaks the same protocol).

User names and passwords go into statements as string literals escaped by
PyMySQL (`'name'@'%'` is valid account syntax). Accounts are taken to be
`'<user>'@'%'`, as RDS creates them.

Connections are plain TCP: the test databases are local. AWS's own
functions try TLS first and fall back only when the secret allows it.
"""

import re

import pymysql

ENGINES = ("mysql", "mariadb")
DEFAULT_DBNAME = None
DEFAULT_PORT = 3306
# MySQL 5.7+ allows 32 characters (MariaDB 80): the stricter one applies.
MAX_USERNAME_LENGTH = 32
CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 10

ACCOUNT_HOST = "%"

# Access denied, and access denied for a user that must sign in otherwise.
_REFUSED = {1045, 1698}

# MariaDB's SHOW GRANTS carries the account's password hash: the clone gets
# its own password instead.
_PASSWORD_CLAUSE = re.compile(r" IDENTIFIED BY PASSWORD '[^']*'")


def sign_in(settings):
    """A connection as the settings' user, or None when the server refuses
    the credentials. An unreachable server raises: no other password helps."""
    try:
        return pymysql.connect(
            host=settings["host"],
            port=settings["port"],
            user=settings["username"],
            password=settings["password"],
            database=settings["dbname"],
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=STATEMENT_TIMEOUT_SECONDS,
            write_timeout=STATEMENT_TIMEOUT_SECONDS,
            autocommit=True,
        )
    except pymysql.err.OperationalError as error:
        if error.args and error.args[0] in _REFUSED:
            return None
        raise


def run_trivial_query(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT NOW()")
        cursor.fetchall()


def set_own_password(connection, username, password):
    # A user may change its own password without any privilege, but not with
    # the same statement on both servers: MariaDB's ALTER USER needs CREATE
    # USER even for oneself, and MySQL 8 has no PASSWORD() function.
    with connection.cursor() as cursor:
        if "MariaDB" in connection.get_server_info():
            cursor.execute("SET PASSWORD = PASSWORD(%s)", (password,))
        else:
            cursor.execute("ALTER USER CURRENT_USER() IDENTIFIED BY %s", (password,))


def ensure_user_like(connection, model_user, username, password):
    """Signed in as the master user: `username` exists, signs in with
    `password`, and holds every grant `model_user` holds."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW GRANTS FOR %s@%s", (model_user, ACCOUNT_HOST))
        grants = [row[0] for row in cursor.fetchall()]
        cursor.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (username, ACCOUNT_HOST, password))
        cursor.execute("ALTER USER %s@%s IDENTIFIED BY %s", (username, ACCOUNT_HOST, password))
        model_grantee = f" TO {_quoted(model_user)}@{_quoted(ACCOUNT_HOST)}"
        new_grantee = f" TO {_quoted(username)}@{_quoted(ACCOUNT_HOST)}"
        for grant in grants:
            if grant.startswith("GRANT PROXY ") or model_grantee not in grant:
                continue
            statement = _PASSWORD_CLAUSE.sub("", grant.replace(model_grantee, new_grantee, 1))
            cursor.execute(statement)


def _quoted(name):
    """An identifier as SHOW GRANTS prints it."""
    return "`" + name.replace("`", "``") + "`"
