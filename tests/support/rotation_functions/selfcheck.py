"""Runs the rotation functions in this process against real databases and
the emulator's Secrets Manager, and checks what a rotation must leave.

    .venv/bin/python tests/support/rotation_functions/selfcheck.py \\
        --postgres 127.0.0.1:5432:postgres:MASTER_PASSWORD \\
        --mysql 127.0.0.1:3306:root:MASTER_PASSWORD

Each database is optional (`USER:PASSWORD` is a master user that may create
users). The emulator is started on a free port unless `--emulator URL`
names one. The four steps are called here, one after the other, as
Secrets Manager calls them; the Lambda that RotateSecret is given runs
nothing, so that the emulator never rotates the secret on its own.
Prints one line per check and `N passed, N failed` last; exits 1 on a
failure.
"""

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
import zipfile

import boto3

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mysql_database  # noqa: E402
import postgresql_database  # noqa: E402
import rotation_contract  # noqa: E402
from package import HANDLER  # noqa: E402

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
RESULTS = {"passed": 0, "failed": 0}
LOG_LINES = io.StringIO()


def check(label, condition):
    RESULTS["passed" if condition else "failed"] += 1
    print(f"{'ok' if condition else 'FAILED'}: {label}", flush=True)


class Stack:
    """The emulator's Secrets Manager, and a Lambda that does nothing."""

    def __init__(self, endpoint):
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
        )
        os.environ.pop("SECRETS_MANAGER_ENDPOINT", None)
        self.secrets = boto3.client("secretsmanager")
        role = boto3.client("iam").create_role(
            RoleName=f"selfcheck-{uuid.uuid4().hex[:8]}",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("lambda_function.py", "def lambda_handler(event, context):\n    return None\n")
        self.idle_function = boto3.client("lambda").create_function(
            FunctionName=f"selfcheck-idle-{uuid.uuid4().hex[:8]}",
            Runtime="python3.11",
            Role=role,
            Handler=HANDLER,
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        boto3.client("lambda").add_permission(
            FunctionName=self.idle_function,
            StatementId="secrets-manager",
            Action="lambda:InvokeFunction",
            Principal="secretsmanager.amazonaws.com",
        )

    def secret(self, value):
        name = f"selfcheck/{uuid.uuid4().hex[:8]}"
        string = value if isinstance(value, str) else json.dumps(value)
        return self.secrets.create_secret(Name=name, SecretString=string)["ARN"]

    def value(self, arn, stage):
        string = self.secrets.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"]
        try:
            return json.loads(string)
        except ValueError:
            return string

    def rotate(self, arn, handler, steps=STEPS):
        """One rotation: the four steps, then AWSPENDING removed as Secrets
        Manager removes it once finishSecret returned."""
        token = self.secrets.rotate_secret(
            SecretId=arn, RotationLambdaARN=self.idle_function, RotationRules={"AutomaticallyAfterDays": 30}
        )["VersionId"]
        for step in steps:
            handler({"Step": step, "SecretId": arn, "ClientRequestToken": token, "RotationToken": "t"}, None)
        self.secrets.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token)
        return token


def failure_of(action):
    """The exception `action` raises (None if none), and how long it took."""
    started = time.monotonic()
    try:
        action()
        error = None
    except Exception as raised:  # the check looks at which one
        error = raised
    return error, time.monotonic() - started


def signs_in(database, base, username, password):
    connection = database.sign_in(dict(base, username=username, password=password))
    if connection is not None:
        connection.close()
    return connection is not None


class Engine:
    """A database server, its master user, and how to make a test user."""

    def __init__(self, spec, database, engine):
        host, port, self.master_user, self.master_password = spec.split(":", 3)
        self.database = database
        self.engine = engine
        self.base = {"engine": engine, "host": host, "port": int(port), "dbname": database.DEFAULT_DBNAME}
        self.prefix = f"sc{uuid.uuid4().hex[:6]}"

    def admin(self, *statements):
        connection = self.database.sign_in(dict(self.base, username=self.master_user, password=self.master_password))
        try:
            for statement in statements:
                if self.database is postgresql_database:
                    connection.run(statement)
                else:
                    with connection.cursor() as cursor:
                        cursor.execute(statement)
        finally:
            connection.close()

    def make_user(self, username, password, table):
        """A user that may read `table` (which the master user owns)."""
        if self.database is postgresql_database:
            self.admin(
                f"CREATE ROLE {username} LOGIN PASSWORD '{password}'",
                f"CREATE TABLE {table} (id int)",
                f"GRANT SELECT ON {table} TO {username}",
            )
        else:
            self.admin(
                f"CREATE DATABASE IF NOT EXISTS {self.prefix}",
                f"CREATE USER '{username}'@'%' IDENTIFIED BY '{password}'",
                f"CREATE TABLE {self.prefix}.{table} (id int)",
                f"GRANT SELECT ON {self.prefix}.{table} TO '{username}'@'%'",
            )

    def reads_table(self, username, password, table):
        connection = self.database.sign_in(dict(self.base, username=username, password=password))
        if connection is None:
            return False
        try:
            if self.database is postgresql_database:
                connection.run(f"SELECT count(*) FROM {table}")
            else:
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT count(*) FROM {self.prefix}.{table}")
            return True
        except Exception:
            return False
        finally:
            connection.close()


def check_single_user(stack, engine):
    name = engine.engine
    user, old = f"{engine.prefix}_single", "Old-password-1"
    engine.make_user(user, old, f"{engine.prefix}_single_t")
    arn = stack.secret(dict(engine.base, username=user, password=old))
    stack.rotate(arn, rotation_contract.make_handler(engine.database))
    new = stack.value(arn, "AWSCURRENT")["password"]
    check(f"{name} single user: AWSCURRENT has a new password", new != old)
    check(f"{name} single user: the new password signs in", signs_in(engine.database, engine.base, user, new))
    check(f"{name} single user: the old password is refused", not signs_in(engine.database, engine.base, user, old))
    check(f"{name} single user: AWSPREVIOUS holds the old password", stack.value(arn, "AWSPREVIOUS")["password"] == old)
    return [old, new]


def check_alternating_users(stack, engine):
    name = engine.engine
    user, old, table = f"{engine.prefix}_multi", "Old-password-2", f"{engine.prefix}_multi_t"
    engine.make_user(user, old, table)
    master = stack.secret(dict(engine.base, username=engine.master_user, password=engine.master_password))
    arn = stack.secret(dict(engine.base, username=user, password=old, masterarn=master))
    handler = rotation_contract.make_handler(engine.database, alternating_users=True)
    stack.rotate(arn, handler)
    current = stack.value(arn, "AWSCURRENT")
    clone, clone_password = current["username"], current["password"]
    check(f"{name} alternating users: AWSCURRENT names the clone", clone == f"{user}_clone")
    check(f"{name} alternating users: the clone signs in and reads the user's table",
          engine.reads_table(clone, clone_password, table))
    check(f"{name} alternating users: the original user still signs in with its password",
          signs_in(engine.database, engine.base, user, old))
    stack.rotate(arn, handler)
    back = stack.value(arn, "AWSCURRENT")
    check(f"{name} alternating users: the next rotation goes back to the original user",
          back["username"] == user and engine.reads_table(user, back["password"], table))
    check(f"{name} alternating users: the clone keeps its password",
          signs_in(engine.database, engine.base, clone, clone_password))

    orphan = stack.secret(dict(engine.base, username=user, password=back["password"]))
    error, _ = failure_of(lambda: stack.rotate(orphan, handler))
    check(f"{name} alternating users: a secret without masterarn fails with a KeyError naming it",
          isinstance(error, KeyError) and "masterarn" in str(error))
    return [old, clone_password, back["password"], engine.master_password]


def check_unreachable(stack, engine):
    closed_port = engine.base["port"] + 1 if engine.base["port"] < 65535 else 1
    arn = stack.secret(dict(engine.base, port=closed_port, username="nobody", password="Unused-password-3"))
    error, seconds = failure_of(lambda: stack.rotate(arn, rotation_contract.make_handler(engine.database)))
    check(f"{engine.engine}: an unreachable database fails setSecret within 6 s "
          f"({type(error).__name__}, {seconds:.1f} s)", error is not None and seconds < 6)
    return ["Unused-password-3"]


def check_hosts_elsewhere():
    """Decided on the secret alone: nothing is looked up or reached even if
    the check failed."""
    secret = {"engine": "postgres", "host": "db.cluster-x.us-east-1.rds.amazonaws.com", "username": "u", "password": "p"}
    try:
        rotation_contract.connection_settings(secret, "arn:selfcheck", "AWSPENDING", postgresql_database)
        error = None
    except ValueError as raised:
        error = raised
    check("a host not on this machine is refused before any lookup", error is not None and "host" in str(error))
    check("127.0.0.1, ::1 and localhost are on this machine",
          all(rotation_contract.is_on_this_machine(h) for h in ("127.0.0.1", "::1", "localhost")))
    return []


def check_generic(stack):
    arn = stack.secret({"username": "someone", "password": "Old-password-4"})
    stack.rotate(arn, rotation_contract.make_handler(None))
    check("generic: a JSON secret gets a new password on AWSCURRENT",
          stack.value(arn, "AWSCURRENT")["password"] != "Old-password-4"
          and stack.value(arn, "AWSPREVIOUS")["password"] == "Old-password-4")
    plain = stack.secret("Old-password-5")
    stack.rotate(plain, rotation_contract.make_handler(None))
    check("generic: a plain-text secret becomes a new password",
          stack.value(plain, "AWSCURRENT") not in ("Old-password-5", ""))
    return ["Old-password-4", "Old-password-5", stack.value(plain, "AWSCURRENT")]


def scenario(run, *args):
    """Runs one scenario; one that raises counts as a failed check. Returns
    the passwords it used, to look for in the log."""
    try:
        return run(*args)
    except Exception as error:  # the failure is reported, the next scenario runs
        check(f"{run.__name__} ran to its end (it raised {type(error).__name__}: {error})", False)
        return []


def start_emulator():
    emulator = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "..", "emulator.py"), "--port", "0", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = emulator.stdout.readline()
    if "listening on " not in line:
        raise SystemExit(f"selfcheck: the emulator did not start: {line!r}")
    return emulator, line.split("listening on ", 1)[1].strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulator", help="the emulator's URL (default: start one)")
    parser.add_argument("--postgres", help="HOST:PORT:MASTER_USER:MASTER_PASSWORD")
    parser.add_argument("--mysql", help="HOST:PORT:MASTER_USER:MASTER_PASSWORD (MySQL or MariaDB)")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(LOG_LINES)
    logging.getLogger().addHandler(handler)
    emulator = None
    endpoint = args.emulator
    if endpoint is None:
        emulator, endpoint = start_emulator()
    try:
        stack = Stack(endpoint)
        secrets_used = scenario(check_hosts_elsewhere) + scenario(check_generic, stack)
        engines = []
        if args.postgres:
            engines.append(Engine(args.postgres, postgresql_database, "postgres"))
        if args.mysql:
            engines.append(Engine(args.mysql, mysql_database, "mysql"))
        for engine in engines:
            for check_engine in (check_single_user, check_alternating_users, check_unreachable):
                secrets_used += scenario(check_engine, stack, engine)
        logged = LOG_LINES.getvalue()
        check("the functions logged their steps", "finishSecret: moved AWSCURRENT" in logged)
        check("no password appears in the functions' log", not any(s and s in logged for s in secrets_used))
    finally:
        if emulator is not None:
            emulator.stdin.close()
            emulator.wait(timeout=10)
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
