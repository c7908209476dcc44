"""The four steps of a Secrets Manager rotation, as AWS's user guide
describes the contract, for this project's test stack.

A rotation function is this module plus a database module that knows how
to sign in and change passwords (`postgresql_database`, `mysql_database`),
or none at all (the generic function, which rotates the secret alone).
`package.py` puts them in a zip with a `lambda_function.py` that calls
`make_handler`.

Nothing here ever logs or raises with a secret's value: messages name the
secret's ARN, the version token and the key concerned, never a password.
"""

import ipaddress
import json
import logging
import os

import boto3

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"
PREVIOUS = "AWSPREVIOUS"

# The templates' own default, used when the function runs without them.
DEFAULT_EXCLUDE_CHARACTERS = "/@\"'\\"

CLONE_SUFFIX = "_clone"

# Lambda's Python runtime installs its own handler on the root logger, which
# makes basicConfig a no-op there; elsewhere (a plain child process, a test
# calling the handler in-process) this is what makes the INFO lines appear.
# Only this logger says INFO: the root stays at WARNING, so botocore's own
# INFO chatter stays out of the function's log.
logging.basicConfig(format="[%(levelname)s]\t%(asctime)s\t%(message)s")
LOG = logging.getLogger("rotation")
LOG.setLevel(logging.INFO)


def secrets_client():
    # The templates set SECRETS_MANAGER_ENDPOINT (their `endpoint` parameter);
    # without it boto3 finds the endpoint itself (AWS_ENDPOINT_URL included).
    return boto3.client("secretsmanager", endpoint_url=os.environ.get("SECRETS_MANAGER_ENDPOINT") or None)


def make_handler(database=None, alternating_users=False):
    """The Lambda handler of one kind of rotation function.

    `database` is the module that reaches the database, or None for a
    function that rotates the secret without one; `alternating_users` makes
    each rotation switch between a user and its clone, created by the user
    the secret's `masterarn` names.
    """

    def lambda_handler(event, context):
        arn = event["SecretId"]
        token = event["ClientRequestToken"]
        step = event["Step"]
        client = secrets_client()
        if not _version_is_pending(client, arn, token):
            return
        if step == "createSecret":
            create_secret(client, arn, token, alternating_users, database)
        elif step == "setSecret":
            set_secret(client, arn, token, alternating_users, database)
        elif step == "testSecret":
            test_secret(client, arn, token, database)
        elif step == "finishSecret":
            finish_secret(client, arn, token)
        else:
            raise ValueError(f"Invalid step parameter {step!r} for secret {arn}")

    return lambda_handler


def _version_is_pending(client, arn, token):
    """Whether the step has work to do: the token is this secret's AWSPENDING
    version. A version already AWSCURRENT means an earlier attempt finished."""
    description = client.describe_secret(SecretId=arn)
    if not description.get("RotationEnabled"):
        raise ValueError(f"Secret {arn} is not enabled for rotation")
    stages = description.get("VersionIdsToStages", {})
    if token not in stages:
        raise ValueError(f"Secret version {token} has no stage for rotation of secret {arn}")
    if CURRENT in stages[token]:
        LOG.info("Secret version %s is already AWSCURRENT for secret %s: nothing to do", token, arn)
        return False
    if PENDING not in stages[token]:
        raise ValueError(f"Secret version {token} not set as AWSPENDING for rotation of secret {arn}")
    return True


# --------------------------------------------------------------------------
# The four steps
# --------------------------------------------------------------------------


def create_secret(client, arn, token, alternating_users, database):
    current_value = client.get_secret_value(SecretId=arn, VersionStage=CURRENT).get("SecretString")
    try:
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage=PENDING)
        LOG.info("createSecret: version %s of secret %s already holds a value", token, arn)
        return
    except client.exceptions.ResourceNotFoundException:
        pass

    if database is None and not _is_json_object(current_value):
        # A custom secret that is no JSON object: the generic function's
        # whole value is the password.
        pending_value = _new_password(client)
    else:
        current = parse_secret(current_value, arn, CURRENT)
        pending = dict(current, password=_new_password(client))
        if alternating_users:
            _switch_user(current, pending, arn, database)
        pending_value = json.dumps(pending)
    client.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=pending_value,
        VersionStages=[PENDING],
    )
    LOG.info("createSecret: put a new secret value in version %s of secret %s", token, arn)


def _switch_user(current, pending, arn, database):
    pending["username"] = other_user(require(current, "username", arn, CURRENT))
    limit = getattr(database, "MAX_USERNAME_LENGTH", None)
    if limit is not None and len(pending["username"]) > limit:
        raise ValueError(
            f"Username {pending['username']!r} for secret {arn} is longer than the "
            f"{limit} characters the database allows"
        )


def set_secret(client, arn, token, alternating_users, database):
    if database is None:
        LOG.info("setSecret: there is no database to reach for secret %s (version %s)", arn, token)
        return
    pending = connection_settings(read_secret(client, arn, PENDING, token), arn, PENDING, database)
    if alternating_users:
        _set_alternating_user(client, arn, token, pending, database)
    else:
        _set_single_user(client, arn, token, pending, database)


def test_secret(client, arn, token, database):
    if database is None:
        LOG.info("testSecret: there is no database to reach for secret %s (version %s)", arn, token)
        return
    pending = connection_settings(read_secret(client, arn, PENDING, token), arn, PENDING, database)
    connection = database.sign_in(pending)
    if connection is None:
        raise ValueError(
            f"testSecret: unable to sign in as {pending['username']} with the AWSPENDING "
            f"secret of {arn} (version {token})"
        )
    try:
        database.run_trivial_query(connection)
    finally:
        connection.close()
    LOG.info("testSecret: signed in as %s with the AWSPENDING secret of %s", pending["username"], arn)


def finish_secret(client, arn, token):
    description = client.describe_secret(SecretId=arn)
    current_version = None
    for version, stages in description.get("VersionIdsToStages", {}).items():
        if CURRENT in stages:
            current_version = version
            break
    # Secrets Manager moves AWSPREVIOUS to the version AWSCURRENT leaves.
    client.update_secret_version_stage(
        SecretId=arn,
        VersionStage=CURRENT,
        MoveToVersionId=token,
        RemoveFromVersionId=current_version,
    )
    LOG.info(
        "finishSecret: moved AWSCURRENT of secret %s to version %s from version %s", arn, token, current_version
    )


# --------------------------------------------------------------------------
# setSecret, per user strategy
# --------------------------------------------------------------------------


def _set_single_user(client, arn, token, pending, database):
    connection = database.sign_in(pending)
    if connection is not None:
        connection.close()
        LOG.info("setSecret: the AWSPENDING secret of %s already signs in as %s", arn, pending["username"])
        return
    # An earlier attempt may have changed the password already and failed
    # after, which leaves the database on AWSPREVIOUS's password or newer.
    for stage in (CURRENT, PREVIOUS):
        try:
            candidate = read_secret(client, arn, stage)
        except client.exceptions.ResourceNotFoundException:
            continue
        settings = connection_settings(candidate, arn, stage, database)
        for key in ("username", "host"):
            if settings[key] != pending[key]:
                raise ValueError(f"setSecret: the {stage} and AWSPENDING secrets of {arn} name different {key}s")
        connection = database.sign_in(settings)
        if connection is None:
            LOG.info("setSecret: the %s secret of %s does not sign in as %s", stage, arn, settings["username"])
            continue
        try:
            database.set_own_password(connection, pending["username"], pending["password"])
        finally:
            connection.close()
        LOG.info("setSecret: set the password of %s from the %s secret of %s", pending["username"], stage, arn)
        return
    raise ValueError(
        f"setSecret: unable to sign in as {pending['username']} with the AWSPENDING, AWSCURRENT or "
        f"AWSPREVIOUS secret of {arn}"
    )


def _set_alternating_user(client, arn, token, pending, database):
    current = connection_settings(read_secret(client, arn, CURRENT), arn, CURRENT, database)
    if pending["username"] not in (current["username"], other_user(current["username"])):
        raise ValueError(
            f"setSecret: the AWSPENDING user {pending['username']} of {arn} is neither the current user "
            f"nor its clone"
        )
    if current["host"] != pending["host"]:
        raise ValueError(f"setSecret: the AWSCURRENT and AWSPENDING secrets of {arn} name different hosts")
    master_arn = require(current, "masterarn", arn, CURRENT)
    master = read_secret(client, master_arn, CURRENT)
    # The master user signs in to the server the rotated user lives on.
    master_settings = dict(
        current,
        username=require(master, "username", master_arn, CURRENT),
        password=require(master, "password", master_arn, CURRENT),
    )
    connection = database.sign_in(master_settings)
    if connection is None:
        raise ValueError(
            f"setSecret: unable to sign in as the master user {master_settings['username']} "
            f"with the AWSCURRENT secret of {master_arn}"
        )
    try:
        database.ensure_user_like(connection, current["username"], pending["username"], pending["password"])
    finally:
        connection.close()
    LOG.info(
        "setSecret: user %s has the password of version %s of secret %s, with the privileges of %s",
        pending["username"],
        token,
        arn,
        current["username"],
    )


# --------------------------------------------------------------------------
# Secret values
# --------------------------------------------------------------------------


def read_secret(client, arn, stage, token=None):
    """The JSON object one version of a secret holds."""
    request = {"SecretId": arn, "VersionStage": stage}
    if token is not None:
        request["VersionId"] = token
    return parse_secret(client.get_secret_value(**request).get("SecretString"), arn, stage)


def parse_secret(value, arn, stage):
    if not _is_json_object(value):
        raise ValueError(f"The {stage} secret of {arn} is not a JSON object")
    return json.loads(value)


def require(secret, key, arn, stage):
    if key not in secret or secret[key] in (None, ""):
        raise KeyError(f"The {stage} secret of {arn} has no {key!r} key")
    return secret[key]


def connection_settings(secret, arn, stage, database):
    """The keys a database module signs in with, checked, defaults filled in."""
    engine = require(secret, "engine", arn, stage)
    if engine not in database.ENGINES:
        raise ValueError(
            f"The {stage} secret of {arn} names engine {engine!r}; this function rotates "
            f"{' or '.join(database.ENGINES)}"
        )
    settings = dict(secret)
    for key in ("host", "username", "password"):
        require(secret, key, arn, stage)
    if not is_on_this_machine(secret["host"]):
        # What a function in a network that cannot reach the host meets: a
        # connection error (never a lookup of a made-up name from here).
        raise ConnectionError(
            f"could not connect to the database at {secret['host']}:{secret.get('port')}: "
            f"network is unreachable"
        )
    settings["dbname"] = secret.get("dbname") or database.DEFAULT_DBNAME
    try:
        settings["port"] = int(secret.get("port") or database.DEFAULT_PORT)
    except (TypeError, ValueError):
        raise ValueError(f"The {stage} secret of {arn} has a 'port' that is not a number") from None
    return settings


def is_on_this_machine(host):
    """Whether a host is loopback, decided without resolving it: a test
    secret's made-up RDS host name must never reach DNS."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def other_user(username):
    """The user an alternating rotation switches to: `<user>` <-> `<user>_clone`."""
    if username.endswith(CLONE_SUFFIX):
        return username[: -len(CLONE_SUFFIX)]
    return username + CLONE_SUFFIX


def _is_json_object(value):
    try:
        return isinstance(json.loads(value), dict)
    except (TypeError, ValueError):
        return False


def _new_password(client):
    exclude = os.environ.get("EXCLUDE_CHARACTERS", DEFAULT_EXCLUDE_CHARACTERS)
    request = {"ExcludeCharacters": exclude} if exclude else {}
    return client.get_random_password(**request)["RandomPassword"]
