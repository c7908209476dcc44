"""AWS and database calls for `make demo`, against the local emulator and a
local PostgreSQL.

Subcommands:
  create-secrets SERVER_JSON_FILE
                            in the PostgreSQL that databases.py described
                            (the JSON line it printed), make an application
                            user owning a table and a master user
                            (CREATEROLE); then a master secret and a database
                            secret for them in RDS format; print
                            `DATABASE_SECRET_ARN=...` and `MASTER_SECRET_ARN=...`
  status SECRET_ARN         rotation status and every resource behind it
  versions SECRET_ARN       each version of the secret: its labels, its user,
                            a hash prefix of its password, and whether that
                            user signs in with it and reads the table
  rotate SECRET_ARN         RotateSecret, then wait until the new version holds
                            AWSCURRENT (or the function logs an error)
  remove-permission SECRET_ARN
                            delete the Lambda invoke permission scoped to the
                            secret, as someone might by hand
  leftovers SECRET_ARN      after destroy: what, if anything, is left

No password is ever printed or put on a command line: psql gets it in
PGPASSWORD, and only the first hex digits of its SHA-256 are shown.
The endpoint and credentials come from the standard AWS_* variables.
"""

import glob
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

# Ctrl-C ends the demo: demo.sh reports the step and cleans up, so this
# process just stops, with no traceback, even in the middle of boto3's import.
signal.signal(signal.SIGINT, signal.SIG_DFL)

import boto3  # noqa: E402

APP_USER = "app_user"
MASTER_USER = "app_master"
APP_TABLE = "app_orders"
ROTATION_TIMEOUT_SECONDS = 180


def client(service):
    return boto3.client(service)


def _password():
    # URL-safe letters only, so it sits in an SQL literal without escaping;
    # generated here and stored only in the database and the secret.
    return secrets.token_urlsafe(24)


def _fingerprint(password):
    # Enough to tell passwords apart on screen, nothing to sign in with.
    return hashlib.sha256(password.encode()).hexdigest()[:8]


def _psql_path():
    # A server-only install has psql under its version's bin, not on PATH.
    found = shutil.which("psql") or next(iter(glob.glob("/usr/lib/postgresql/*/bin/psql")), None)
    if not found:
        sys.exit("psql is missing (`make databases` installs PostgreSQL)")
    return found


def psql(host, port, user, password, sql):
    """Runs `sql` (on stdin) as `user`: (rows, None), or (None, [psql's
    last error line]) when the sign-in or a statement fails. The password
    travels in PGPASSWORD, never on a command line."""
    result = subprocess.run(
        [_psql_path(), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        + ["-h", str(host), "-p", str(port), "-U", user, "-d", "postgres"],
        input=sql,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
    )
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1:] or ["psql failed"]
    return result.stdout.strip(), None


def create_secrets(server_json_file):
    with open(server_json_file) as f:
        server = json.load(f)["postgres"]
    host, port = server["host"], server["port"]
    app_password, master_password = _password(), _password()
    # The table belongs to the application user; the clone the rotation
    # makes reads it only through membership of that user's role, which is
    # what shows that it got the same privileges.
    _, error = psql(
        host,
        port,
        server["user"],
        server["password"],
        f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{app_password}';\n"
        f"CREATE ROLE {MASTER_USER} LOGIN CREATEROLE PASSWORD '{master_password}';\n"
        f"CREATE TABLE {APP_TABLE} (id int PRIMARY KEY, item text);\n"
        f"INSERT INTO {APP_TABLE} VALUES (1, 'tea'), (2, 'scones'), (3, 'jam');\n"
        f"ALTER TABLE {APP_TABLE} OWNER TO {APP_USER};\n",
    )
    if error:
        sys.exit(f"could not create the database users: {error[0]}")
    print(f"  PostgreSQL users: {APP_USER} (owns table {APP_TABLE}, 3 rows), {MASTER_USER} (CREATEROLE)", file=sys.stderr)

    def rds_secret(username, password, **extra):
        return json.dumps(
            {
                "engine": "postgres",
                "host": host,
                "username": username,
                "password": password,
                "dbname": "postgres",
                "port": port,
                **extra,
            }
        )

    sm = client("secretsmanager")
    master = sm.create_secret(
        Name="demo/app-db-master",
        Description="Credentials of a database user allowed to manage other users",
        SecretString=rds_secret(MASTER_USER, master_password),
    )
    database = sm.create_secret(
        Name="demo/app-db",
        Description="Credentials the application uses",
        SecretString=rds_secret(APP_USER, app_password, masterarn=master["ARN"]),
    )
    print(f"DATABASE_SECRET_ARN={database['ARN']}")
    print(f"MASTER_SECRET_ARN={master['ARN']}")


def _versions(secret_arn):
    """Every version, oldest first, with its labels and value."""
    sm = client("secretsmanager")
    listed = sm.list_secret_version_ids(SecretId=secret_arn, IncludeDeprecated=True)["Versions"]
    listed.sort(key=lambda v: v["CreatedDate"])
    versions = []
    for version in listed:
        try:
            value = sm.get_secret_value(SecretId=secret_arn, VersionId=version["VersionId"])
        except sm.exceptions.ResourceNotFoundException:
            continue
        if "SecretString" not in value:
            continue
        versions.append((version["VersionId"], version.get("VersionStages", []), json.loads(value["SecretString"])))
    return versions


def versions(secret_arn):
    rows = _versions(secret_arn)
    print(f"  {'version':<10}{'labels':<26}{'user':<16}{'password (sha256)':<19}{'signs in':<10}reads {APP_TABLE}")
    by_label = {}
    for version_id, stages, value in rows:
        answer, _ = psql(
            value["host"],
            value["port"],
            value["username"],
            value["password"],
            f"SELECT count(*) FROM {APP_TABLE};",
        )
        signs_in = answer is not None
        if not signs_in:
            # Signing in may work even if the read does not: ask separately.
            signs_in = psql(value["host"], value["port"], value["username"], value["password"], "SELECT 1;")[0] == "1"
        reads = f"{answer} rows" if answer is not None else "-"
        labels = ", ".join(sorted(stages)) or "(none: replaced)"
        print(
            f"  {version_id[:8]:<10}{labels:<26}{value['username']:<16}"
            f"{_fingerprint(value['password']):<19}{'yes' if signs_in else 'no':<10}{reads}"
        )
        for stage in stages:
            by_label[stage] = value
    current, previous = by_label.get("AWSCURRENT"), by_label.get("AWSPREVIOUS")
    if current and previous:
        earlier = {v["password"] for _, stages, v in rows if "AWSCURRENT" not in stages}
        print(
            f"  AWSCURRENT names {current['username']} (AWSPREVIOUS: {previous['username']}); "
            f"password changed: {'yes' if current['password'] not in earlier else 'NO'}"
        )


def _function_errors(function_arn, since_ms):
    logs = client("logs")
    group = f"/aws/lambda/{function_arn.rsplit(':', 1)[-1]}"
    try:
        events = logs.filter_log_events(logGroupName=group, startTime=since_ms)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    return [e["message"].splitlines()[0] for e in events if e["message"].startswith("[ERROR]")]


def rotate(secret_arn):
    sm = client("secretsmanager")
    started = time.time()
    version_id = sm.rotate_secret(SecretId=secret_arn)["VersionId"]
    print(f"  RotateSecret started the rotation to version {version_id[:8]}; waiting for it to finish")
    function = sm.describe_secret(SecretId=secret_arn)["RotationLambdaARN"]
    while time.time() - started < ROTATION_TIMEOUT_SECONDS:
        stages = sm.describe_secret(SecretId=secret_arn).get("VersionIdsToStages", {})
        if "AWSCURRENT" in stages.get(version_id, []):
            print(f"  finished in {time.time() - started:.1f} s: AWSCURRENT is on version {version_id[:8]}")
            return
        errors = _function_errors(function, int(started * 1000))
        if errors:
            sys.exit("the rotation failed: " + "; ".join(errors))
        time.sleep(0.5)
    sys.exit(f"the rotation did not finish within {ROTATION_TIMEOUT_SECONDS} s")


def _invoke_statements(function, secret_arn):
    try:
        policy = json.loads(client("lambda").get_policy(FunctionName=function)["Policy"])
    except client("lambda").exceptions.ResourceNotFoundException:
        return []
    return [s for s in policy.get("Statement", []) if secret_arn in json.dumps(s)]
def status(secret_arn):
    sm = client("secretsmanager")
    described = sm.describe_secret(SecretId=secret_arn)
    print("  Secret")
    print(f"    name               {described['Name']}")
    print(f"    rotation enabled   {described.get('RotationEnabled', False)}")
    print(f"    rotation Lambda    {described.get('RotationLambdaARN', '-')}")
    print(f"    rotation rules     {json.dumps(described.get('RotationRules', {}))}")
    stages = described.get("VersionIdsToStages", {})
    print(f"    version stages     {json.dumps({k[:8]: v for k, v in stages.items() if v})}")
    function = described.get("RotationLambdaARN")
    if not function:
        return
    lam = client("lambda")
    configuration = lam.get_function_configuration(FunctionName=function)
    vpc = configuration.get("VpcConfig") or {}
    print("  Rotation Lambda")
    print(f"    function           {configuration['FunctionName']} ({configuration.get('Runtime')})")
    print(f"    role               {configuration['Role']}")
    print(f"    subnets            {', '.join(vpc.get('SubnetIds', [])) or '-'}")
    print(f"    security groups    {', '.join(vpc.get('SecurityGroupIds', [])) or '-'}")
    for statement in _invoke_statements(function, secret_arn):
        condition = json.dumps(statement.get("Condition", {}))
        print(f"    invoke permission  {statement.get('Sid')}: {statement.get('Principal')} if {condition}")
    role = configuration["Role"].rsplit("/", 1)[-1]
    for name in client("iam").list_role_policies(RoleName=role)["PolicyNames"]:
        print(f"    role policy        {name}")
    cfn = client("cloudformation")
    for stack in cfn.describe_stacks()["Stacks"]:
        if stack["StackStatus"] == "DELETE_COMPLETE":
            continue
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        print("  CloudFormation stack")
        print(f"    name               {stack['StackName']} ({stack['StackStatus']})")
        application = tags.get("serverlessrepo:applicationId", "-").rsplit("/", 1)[-1]
        print(f"    application        {application} {tags.get('serverlessrepo:semanticVersion', '')}")


def remove_permission(secret_arn):
    function = client("secretsmanager").describe_secret(SecretId=secret_arn).get("RotationLambdaARN")
    statements = _invoke_statements(function, secret_arn) if function else []
    if not statements:
        sys.exit(f"no invoke permission scoped to {secret_arn} found")
    for statement in statements:
        client("lambda").remove_permission(FunctionName=function, StatementId=statement["Sid"])
        print(f"  removed invoke permission {statement['Sid']} from {function.rsplit(':', 1)[-1]}")


def leftovers(secret_arn):
    described = client("secretsmanager").describe_secret(SecretId=secret_arn)
    left = []
    if described.get("RotationEnabled"):
        left.append("rotation is still enabled")
    for version, stages in described.get("VersionIdsToStages", {}).items():
        if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
            left.append(f"an AWSPENDING label on version {version[:8]}, which would block the next rotation")
    stacks = [
        s["StackName"]
        for s in client("cloudformation").describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    left.extend(f"stack {name}" for name in stacks)
    functions = [f["FunctionName"] for f in client("lambda").list_functions()["Functions"]]
    left.extend(f"function {name}" for name in functions)
    if left:
        print("  left behind: " + "; ".join(left))
        sys.exit(1)
    print("  rotation is off; no pending version, stack, Lambda, role, policy or permission remains.")
    print("  The two secrets are still there: they were never Terraform's.")


def main(argv):
    commands = {
        "create-secrets": (create_secrets, 1),
        "status": (status, 1),
        "versions": (versions, 1),
        "rotate": (rotate, 1),
        "remove-permission": (remove_permission, 1),
        "leftovers": (leftovers, 1),
    }
    if not argv or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        sys.exit(__doc__)
    function, _ = commands[argv[0]]
    function(*argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
