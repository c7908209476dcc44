"""The local AWS emulator the tests and `make demo` run against.

moto's server on 127.0.0.1, in this process, with:
- Lambda in its simple mode (no Docker), set before any function exists,
  where every invocation runs the function's own handler
  (`lambda_runtime.py`), and the calls a function makes with its role's
  credentials are checked against the role's policies (`function_iam.py`);
- test-only corrections for the moto 5.x behaviours that differ from AWS in
  ways the provider depends on (see `apply_corrections`);
- a stand-in for the few Serverless Application Repository calls the
  provider makes, served on the same port (moto has no such service);
- in front of both, what AWS does under load (`aws_under_load.py`): request
  quotas at AWS's rates (`--quota-scale`), faults set over HTTP at
  `/_rdsrot/faults`, and Lambda's 20 KB resource-policy limit;
- stack states moto never reaches (a failed deletion, a stuck rollback),
  set over HTTP at `/_rdsrot/stacks`.

Prints one line `rdsrot-emulator listening on http://127.0.0.1:PORT` on stdout
once it accepts connections. `--port 0` picks a free port.
`--exit-on-stdin-eof` stops the server when its stdin closes, so a test
process that dies cannot leave an emulator behind.
"""

import argparse
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from moto.core.config import default_user_config

# Must happen before any Lambda function exists: functions made in the Docker
# mode are invisible to the simple backend.
default_user_config["lambda"]["use_docker"] = False
# AWS's managed policies exist in every account (a role attaches
# AWSLambdaVPCAccessExecutionRole to be placed in a VPC); moto loads them on
# request only.
default_user_config["iam"]["load_aws_managed_policies"] = True

from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.secretsmanager.exceptions import SecretsManagerClientError  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_under_load  # noqa: E402
import cloudformation_lookups  # noqa: E402
import function_iam  # noqa: E402
import lambda_vpc_access  # noqa: E402
import lambda_runtime  # noqa: E402
import stand_in_templates as templates  # noqa: E402

LOG = logging.getLogger("rdsrot-emulator")


# --------------------------------------------------------------------------
# Corrections to moto (test-only)
# --------------------------------------------------------------------------


def _days_of_rate(expression):
    """AWS reports `AutomaticallyAfterDays` next to a `rate(N days)` schedule."""
    match = re.fullmatch(r"rate\((\d+) days?\)", expression or "")
    return int(match.group(1)) if match else 0


class SecretsManagerAccessDenied(SecretsManagerClientError):
    def __init__(self, message):
        super().__init__("AccessDeniedException", message)


PREVIOUS_ROTATION_NOT_COMPLETE = "A previous rotation isn't complete. That rotation will be continued."
CANNOT_INVOKE = (
    "Secrets Manager cannot invoke the specified Lambda function. "
    "Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com."
)
ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")

# (secret ARN, version id) of the rotations whose steps are running now.
_RUNNING = set()
_RUNNING_LOCK = threading.Lock()


def _start_rotation(
    backend, secret_id, client_request_token=None, rotation_lambda_arn=None, rotation_rules=None, rotate_immediately=True
):
    """RotateSecret as AWS documents it: checks, answers the new version id at
    once, and runs the function's steps in the background."""
    from moto.awslambda.utils import get_backend
    from moto.secretsmanager.exceptions import (
        InvalidParameterException,
        InvalidRequestException,
        OperationNotPermittedOnReplica,
        ResourceNotFoundException,
        SecretNotFoundException,
    )
    from moto.secretsmanager.models import ReplicaSecret

    if not backend._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = backend.secrets[secret_id]
    if isinstance(secret, ReplicaSecret):
        raise OperationNotPermittedOnReplica
    if secret.is_deleted():
        raise InvalidRequestException("You tried to perform the operation on a secret that's currently marked deleted.")
    if len(rotation_lambda_arn) > 2048:
        raise InvalidParameterException("RotationLambdaARN must <= 2048 characters long.")
    days = (rotation_rules or {}).get("AutomaticallyAfterDays")
    if days is not None and not 1 <= days <= 1000:
        raise InvalidParameterException("RotationRules.AutomaticallyAfterDays must be within 1-1000.")
    if client_request_token:
        backend._client_request_token_validator(client_request_token)
    try:
        function = get_backend(backend.account_id, backend.region_name).get_function(rotation_lambda_arn)
    except Exception:  # moto's not-found errors share no base class
        raise ResourceNotFoundException(f"Resource not found for ARN '{rotation_lambda_arn}'.")
    if not function_iam.secrets_manager_may_invoke(function, secret.arn, backend.account_id):
        raise SecretsManagerAccessDenied(CANNOT_INVOKE)
    # AWSPENDING beside AWSCURRENT on one version is a finished rotation;
    # alone on another version than this token's, an unfinished one.
    for version_id, version in secret.versions.items():
        stages = version["version_stages"]
        if version_id != client_request_token and "AWSPENDING" in stages and "AWSCURRENT" not in stages:
            raise InvalidRequestException(PREVIOUS_ROTATION_NOT_COMPLETE)

    secret.rotation_requested = True
    secret.rotation_lambda_arn = rotation_lambda_arn
    if days is not None:
        secret.auto_rotate_after_days = days
        secret.next_rotation_date = int(time.time()) + days * 86400
    if secret.auto_rotate_after_days > 0:
        secret.rotation_enabled = True
    secret.last_rotation_date = int(time.time())
    # The token is the rotation's idempotency key: the version it names was
    # (or is being) rotated already. A rotation of it that stopped at a
    # failed step is continued, as AWS says of an unfinished rotation ("That
    # rotation will be continued"): its steps run again on the same version,
    # whose value the database may already hold.
    if client_request_token in secret.versions:
        stages = secret.versions[client_request_token].get("version_stages", [])
        unfinished = "AWSPENDING" in stages and "AWSCURRENT" not in stages
        key = (secret.arn, client_request_token)
        with _RUNNING_LOCK:
            start = unfinished and rotate_immediately and key not in _RUNNING
            if start:
                _RUNNING.add(key)
        if start:
            threading.Thread(
                target=_run_rotation, args=(function, secret, client_request_token, ROTATION_STEPS, False), daemon=True
            ).start()
        return secret.to_short_dict(version_id=client_request_token)

    version_id = client_request_token or str(uuid.uuid4())
    pending = {"createdate": int(time.time()), "version_id": version_id, "version_stages": ["AWSPENDING"]}
    if not rotate_immediately:
        current = secret.versions.get(secret.default_version_id or "", {})
        for value in ("secret_string", "secret_binary"):
            if value in current:
                pending[value] = current[value]
    secret.remove_version_stages_from_old_versions(["AWSPENDING"])
    secret.versions[version_id] = pending
    steps = ROTATION_STEPS if rotate_immediately else ("testSecret",)
    with _RUNNING_LOCK:
        _RUNNING.add((secret.arn, version_id))
    threading.Thread(
        target=_run_rotation, args=(function, secret, version_id, steps, not rotate_immediately), daemon=True
    ).start()
    return secret.to_short_dict(version_id=version_id)


def _run_rotation(function, secret, version_id, steps, only_testing):
    """The rotation service's side: each step a synchronous invocation, up to
    the first that fails (AWSPENDING then stays where it is)."""
    try:
        for step in steps:
            event = {
                "Step": step,
                "SecretId": secret.arn,
                "ClientRequestToken": version_id,
                "RotationToken": str(uuid.uuid4()),
            }
            outcome = lambda_runtime.invoke_function(function, json.dumps(event))
            if outcome.failed:
                LOG.info("secretsmanager: rotating %s stopped at %s: %s", secret.name, step, outcome.error)
                return
        LOG.info("secretsmanager: %s of %s done (%s)", "/".join(steps), secret.name, version_id)
    except Exception:  # never lose a rotation thread silently
        LOG.exception("secretsmanager: rotating %s failed in the emulator", secret.name)
    finally:
        if only_testing:
            stages = secret.versions.get(version_id, {}).get("version_stages", [])
            if "AWSPENDING" in stages:
                stages.remove("AWSPENDING")
        with _RUNNING_LOCK:
            _RUNNING.discard((secret.arn, version_id))


def apply_corrections():
    """Patch moto where it departs from AWS in ways the provider relies on.

    1. CloudFormation: executing a change set neither rebuilds the stack's
       outputs (so `RotationLambdaARN` is missing after a CREATE change set),
       nor records the new parameters and tags (so a later change set with the
       same values is not recognised as empty, and `serverlessrepo:*` tags go
       stale after an update).
    2. Secrets Manager: `RotateSecret` keeps only `AutomaticallyAfterDays`,
       dropping `ScheduleExpression` and `Duration`; a schedule-only rotation
       stays disabled; and a call without `RotationLambdaARN` forgets the
       configured function instead of reusing it.
    3. CloudFormation: deleting a stack one of whose resources is already
       gone fails, where AWS counts that resource as deleted.
    4. Secrets Manager: `ListSecretVersionIds` reports every version as
       created now (AWS reports when each was created) and ends with an empty
       `NextToken` (AWS leaves it out); and a `rate(N days)` schedule gets no
       `NextRotationDate` (AWS reports one; `cron()` schedules still get
       none here).
    5. Secrets Manager: `RotateSecret` invokes the function inside the
       request and ignores what it answers, refuses a new rotation only
       after a finished one, starts another for a repeated token, and never
       checks that Secrets Manager may invoke the function. AWS checks the
       function's resource policy, answers the new version at once and runs
       the four steps in the background, stopping at the first that fails
       (`_start_rotation`). And `GetSecretValue` without a stage answers a
       default-version pointer that does not follow AWSCURRENT.
    6. Lambda: `AddPermission` appends a statement whose Sid is taken.
    7. CloudFormation: `ExecuteChangeSet` runs an executed change set again.
    8. CloudFormation and IAM: deleting a stack strips its role of policies
       the template never declared.
    9. CloudFormation and IAM: a template role's inline policy is kept as the
       template's parsed object, so `GetRolePolicy` answers Python's repr of
       it instead of a JSON document.
    10. CloudFormation: functions a stack makes carry no `aws:cloudformation:*`
        tags, a stack's invoke statements are not named by their resource,
        and `DescribeStackResources` cannot start from a resource's physical
        id (`cloudformation_lookups`).
    11. Lambda: a function is `Active` and its last update `Successful` at
        once, and an update is accepted at any time.
    12. Lambda: a function is placed in a VPC whatever its role may do;
        AWS needs the role's network-interface rights (`lambda_vpc_access`).
    13. Secrets Manager: `CancelRotateSecret` answers the default version,
        not the version of the rotation it cancelled.
    """
    from moto.cloudformation.models import CloudFormationBackend
    from moto.secretsmanager.models import FakeSecret, SecretsManagerBackend

    execute_change_set = CloudFormationBackend.execute_change_set

    def execute_change_set_with_outputs(self, change_set_name, stack_name=None):
        execute_change_set(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name),
            None,
        )
        if change_set is None:
            return
        stack = self.stacks[change_set.stack_id]
        stack._parse_template()
        stack.output_map = stack._create_output_map()
        stack.parameters = dict(change_set.parameters or {})
        if change_set.tags:
            stack.tags = dict(change_set.tags)

    CloudFormationBackend.execute_change_set = execute_change_set_with_outputs

    rotate_secret = SecretsManagerBackend.rotate_secret

    def rotate_secret_with_schedule(
        self,
        secret_id,
        client_request_token=None,
        rotation_lambda_arn=None,
        rotation_rules=None,
        rotate_immediately=True,
    ):
        if not rotation_lambda_arn and self._is_valid_identifier(secret_id):
            rotation_lambda_arn = self.secrets[secret_id].rotation_lambda_arn or None
        # With no function anywhere moto invokes nothing: its own path stays.
        start = _start_rotation if rotation_lambda_arn else rotate_secret
        result = start(
            self,
            secret_id,
            client_request_token=client_request_token,
            rotation_lambda_arn=rotation_lambda_arn,
            rotation_rules=rotation_rules,
            rotate_immediately=rotate_immediately,
        )
        secret = self.secrets[secret_id]
        if rotation_rules is not None:
            expression = rotation_rules.get("ScheduleExpression")
            secret.rdsrot_schedule_expression = expression
            secret.rdsrot_duration = rotation_rules.get("Duration")
            if "AutomaticallyAfterDays" not in rotation_rules:
                secret.auto_rotate_after_days = _days_of_rate(expression)
                if secret.auto_rotate_after_days:
                    secret.next_rotation_date = int(time.time()) + secret.auto_rotate_after_days * 86400
        if secret.rotation_lambda_arn:
            secret.rotation_enabled = True
        return result

    SecretsManagerBackend.rotate_secret = rotate_secret_with_schedule

    # 13. CancelRotateSecret answers the version a rotation under way made,
    #     as AWS documents its VersionId ("the version of the secret created
    #     during the rotation"); moto answers its default-version pointer.
    cancel_rotate_secret = SecretsManagerBackend.cancel_rotate_secret

    def cancel_rotate_secret_naming_the_rotation(self, secret_id):
        answer = cancel_rotate_secret(self, secret_id)
        secret = self.secrets[secret_id]
        with _RUNNING_LOCK:
            running = [version for arn, version in _RUNNING if arn == secret.arn]
        return secret.to_short_dict(version_id=running[0]) if running else answer

    SecretsManagerBackend.cancel_rotate_secret = cancel_rotate_secret_naming_the_rotation

    # 5. GetSecretValue without a version or stage answers AWSCURRENT: moto
    #    answers its own default-version pointer, which stays where it was
    #    when UpdateSecretVersionStage moves AWSCURRENT. The pointer now is
    #    the AWSCURRENT label wherever it is (moto's stored value only while
    #    no version holds it).
    def default_version_id(self):
        for version_id, version in self.versions.items():
            if "AWSCURRENT" in version["version_stages"]:
                return version_id
        return self.__dict__.get("rdsrot_default_version_id")

    def set_default_version_id(self, version_id):
        self.__dict__["rdsrot_default_version_id"] = version_id

    FakeSecret.default_version_id = property(default_version_id, set_default_version_id)

    to_dict = FakeSecret.to_dict

    def to_dict_with_schedule(self):
        described = to_dict(self)
        rules = described.get("RotationRules")
        if rules is None:
            return described
        expression = getattr(self, "rdsrot_schedule_expression", None)
        duration = getattr(self, "rdsrot_duration", None)
        if expression:
            rules["ScheduleExpression"] = expression
            if not rules.get("AutomaticallyAfterDays"):
                rules.pop("AutomaticallyAfterDays", None)
        if duration:
            rules["Duration"] = duration
        return described

    FakeSecret.to_dict = to_dict_with_schedule

    # 3. CloudFormation: deleting a stack whose resource is already gone
    #    (its Lambda deleted by hand, say) fails the whole DeleteStack with
    #    a 500; AWS counts a resource it cannot find as deleted.
    from moto.cloudformation.parsing import ResourceMap

    delete_resource = ResourceMap._delete_resource

    def delete_resource_unless_gone(self, parsed_resource, resource_json):
        try:
            delete_resource(self, parsed_resource, resource_json)
        except Exception as error:  # moto's not-found errors share no base class
            text = f"{type(error).__name__} {error}".lower()
            if not any(word in text for word in ("notfound", "not found", "unknownfunction", "does not exist", "nosuchentity")):
                raise
            LOG.info("cloudformation: %s was already gone (%s)", parsed_resource, type(error).__name__)

    ResourceMap._delete_resource = delete_resource_unless_gone

    # 4. ListSecretVersionIds: each version's own creation date, no empty
    #    token. moto keeps `createdate` per version (as GetSecretValue reports
    #    it) but does not use it here.
    list_secret_version_ids = SecretsManagerBackend.list_secret_version_ids

    def list_secret_version_ids_as_aws(self, secret_id, *args, **kwargs):
        if not self._is_valid_identifier(secret_id):
            from moto.secretsmanager.exceptions import SecretNotFoundException

            raise SecretNotFoundException()
        listed = json.loads(list_secret_version_ids(self, secret_id, *args, **kwargs))
        versions = self.secrets[secret_id].versions
        for entry in listed.get("Versions", []):
            created = versions.get(entry.get("VersionId"), {}).get("createdate")
            if created is not None:
                entry["CreatedDate"] = created
        if not listed.get("NextToken"):
            listed.pop("NextToken", None)
        return json.dumps(listed)

    SecretsManagerBackend.list_secret_version_ids = list_secret_version_ids_as_aws

    _refuse_duplicate_statement_ids()
    _refuse_executed_change_sets()
    _keep_roles_with_undeclared_policies()
    _keep_role_policies_as_json()
    cloudformation_lookups.apply()
    _lambda_changes_take_time()
    lambda_vpc_access.apply()


# 6. Lambda: moto appends a statement whose Sid the policy already holds, so a
#    replayed AddPermission looks like a success and leaves two statements.
DUPLICATE_STATEMENT_ID = (
    "The statement id ({}) provided already exists. Please specify a new statement id, "
    "or remove the existing statement."
)


def _refuse_duplicate_statement_ids():
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.policy import Policy

    class ResourceConflict(LambdaClientError):
        code = 409

        def __init__(self, statement_id):
            super().__init__("ResourceConflictException", DUPLICATE_STATEMENT_ID.format(statement_id))

    add_statement = Policy.add_statement

    def add_statement_once(self, raw, qualifier=None):
        statement_id = json.loads(raw).get("StatementId")
        if statement_id is not None and any(s.get("Sid") == statement_id for s in self.statements):
            raise ResourceConflict(statement_id)
        return add_statement(self, raw, qualifier)

    Policy.add_statement = add_statement_once


# 7. CloudFormation: moto runs a change set again each time it is executed;
#    AWS executes one only while its ExecutionStatus is AVAILABLE. A retry
#    with the first execution's ClientRequestToken is the same request, and
#    AWS answers it as such (moto ignores the token).
def _refuse_executed_change_sets():
    from moto.cloudformation.exceptions import CloudFormationError
    from moto.cloudformation.responses import CloudFormationResponse, EmptyResult

    class InvalidChangeSetStatus(CloudFormationError):
        code = "InvalidChangeSetStatus"

    def execute_change_set_once(self):
        backend = self.cloudformation_backend
        change_set_name = self._get_param("ChangeSetName")
        token = self._get_param("ClientRequestToken")
        change_set = backend.change_sets.get(change_set_name) or next(
            (cs for cs in backend.change_sets.values() if cs.change_set_name == change_set_name),
            None,
        )
        if change_set is not None and change_set.execution_status != "AVAILABLE":
            if token and getattr(change_set, "rdsrot_execution_token", None) == token:
                LOG.info("cloudformation: ExecuteChangeSet token %s repeated: already executed", token)
                return EmptyResult()
            raise InvalidChangeSetStatus(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status of "
                f"[{change_set.execution_status}]"
            )
        backend.execute_change_set(stack_name=self._get_param("StackName"), change_set_name=change_set_name)
        if change_set is not None:
            change_set.rdsrot_execution_token = token
        return EmptyResult()

    CloudFormationResponse.execute_change_set = execute_change_set_once


# 11. Lambda: creating a function or changing its configuration or code
#    takes AWS a while: the function is `State: Pending` after
#    CreateFunction, its `LastUpdateStatus` `InProgress` after an update, and
#    another update meanwhile answers 409 ResourceConflictException. moto
#    finishes every change at once.
LAMBDA_CHANGE_SECONDS = 1.0
# Set over `POST /_rdsrot/lambda {"change_seconds": S}`, so that a test can
# hold a function in its Pending or InProgress state long enough to meet it.
_LAMBDA_CHANGE = {"seconds": LAMBDA_CHANGE_SECONDS}
UPDATE_IN_PROGRESS = "The operation cannot be performed at this time. An update is in progress for resource: {}"
FUNCTION_PENDING = "The operation cannot be performed at this time. The function is currently in the following state: Pending"


def _lambda_changes_take_time():
    from moto.awslambda.exceptions import LambdaClientError
    from moto.awslambda.models import LambdaBackend, LambdaFunction

    class ChangeInProgress(LambdaClientError):
        code = 409

        def __init__(self, message):
            super().__init__("ResourceConflictException", message)

    def busy_with(function):
        """The change still running ("create" or "update"), else None."""
        until, kind = getattr(function, "rdsrot_change", (0.0, None))
        return kind if time.monotonic() < until else None

    def start_change(function, kind):
        function.rdsrot_change = (time.monotonic() + _LAMBDA_CHANGE["seconds"], kind)

    def refuse_while_busy(function):
        busy = busy_with(function)
        if busy == "create":
            raise ChangeInProgress(FUNCTION_PENDING)
        if busy == "update":
            raise ChangeInProgress(UPDATE_IN_PROGRESS.format(function.function_arn))

    get_configuration = LambdaFunction.get_configuration

    def get_configuration_as_it_settles(self, *args, **kwargs):
        config = get_configuration(self, *args, **kwargs)
        busy = busy_with(self)
        if busy == "create":
            config["State"] = "Pending"
            config["StateReason"] = "The function is being created."
            config["StateReasonCode"] = "Creating"
            config.pop("LastUpdateStatus", None)
        elif busy == "update":
            config["LastUpdateStatus"] = "InProgress"
            config["LastUpdateStatusReason"] = "The function is being updated."
            config["LastUpdateStatusReasonCode"] = "InProgress"
        return config

    create_function = LambdaBackend.create_function

    def create_function_pending(self, spec):
        created = create_function(self, spec)
        start_change(self.get_function(spec["FunctionName"]), "create")
        return created

    def one_change_at_a_time(change):
        def changed_when_settled(self, function_name, qualifier, body):
            function = self.get_function(function_name, qualifier)
            refuse_while_busy(function)
            # Started before moto answers, so that the answer says InProgress
            # as AWS's does; a change moto refuses starts nothing.
            before = getattr(function, "rdsrot_change", (0.0, None))
            start_change(function, "update")
            try:
                return change(self, function_name, qualifier, body)
            except Exception:
                function.rdsrot_change = before
                raise

        return changed_when_settled

    LambdaFunction.get_configuration = get_configuration_as_it_settles
    LambdaBackend.create_function = create_function_pending
    LambdaBackend.update_function_configuration = one_change_at_a_time(LambdaBackend.update_function_configuration)
    LambdaBackend.update_function_code = one_change_at_a_time(LambdaBackend.update_function_code)


def lambda_control(method, document):
    """`POST /_rdsrot/lambda {"change_seconds": S}`: how long a function's
    creation or update takes from now on; `GET` answers it."""
    if method == "POST":
        seconds = document.get("change_seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise aws_under_load.RuleError(f"change_seconds is a number >= 0, not {seconds!r}")
        _LAMBDA_CHANGE["seconds"] = float(seconds)
        LOG.info("lambda: a function's creation or update now takes %s s", seconds)
    return 200, {"change_seconds": _LAMBDA_CHANGE["seconds"]}


# 8. IAM through CloudFormation: moto strips every inline policy from a
#    stack's role before deleting it. AWS deletes only what the template
#    declared, so a policy someone else put on the role (or attached) makes
#    DeleteRole fail with DeleteConflict and the stack end DELETE_FAILED,
#    with the other resources deleted and the role kept.
ROLE_HAS_INLINE_POLICIES = "Cannot delete entity, must delete policies first."
ROLE_HAS_MANAGED_POLICIES = "Cannot delete entity, must detach all policies first."


def _keep_role_policies_as_json():
    from moto.iam.models import Role

    put_policy = Role.put_policy

    def put_policy_as_json(self, policy_name, policy_json):
        if not isinstance(policy_json, str):
            policy_json = json.dumps(policy_json)
        put_policy(self, policy_name, policy_json)

    Role.put_policy = put_policy_as_json


def _keep_roles_with_undeclared_policies():
    from moto.cloudformation.models import CloudFormationBackend
    from moto.iam.exceptions import DeleteConflictException
    from moto.iam.models import Role, iam_backends
    from moto.utilities.utils import get_partition

    delete_role = Role.delete_from_cloudformation_json.__func__

    def delete_role_unless_policies_remain(cls, resource_name, cloudformation_json, account_id, region_name):
        properties = cloudformation_json.get("Properties") or {}
        declared_inline = {p.get("PolicyName") for p in properties.get("Policies") or []}
        declared_managed = set(properties.get("ManagedPolicyArns") or [])
        backend = iam_backends[account_id][get_partition(region_name)]
        for role in backend.roles.values():
            if role.name != resource_name:
                continue
            if set(role.managed_policies) - declared_managed:
                raise DeleteConflictException(ROLE_HAS_MANAGED_POLICIES)
            if set(role.policies) - declared_inline:
                raise DeleteConflictException(ROLE_HAS_INLINE_POLICIES)
        delete_role(cls, resource_name, cloudformation_json, account_id, region_name)

    Role.delete_from_cloudformation_json = classmethod(delete_role_unless_policies_remain)

    delete_stack = CloudFormationBackend.delete_stack

    def delete_stack_or_fail_on_conflict(self, name_or_stack_id):
        targets = [s for s in self.stacks.values() if name_or_stack_id in (s.name, s.stack_id)]
        try:
            delete_stack(self, name_or_stack_id)
            for stack in targets:
                stack.stack_status_reason = None
            return None
        except DeleteConflictException as conflict:
            # moto took the stack out of its list before deleting its
            # resources; on AWS it stays, DELETE_FAILED, for another try.
            for stack in targets:
                self.stacks[stack.stack_id] = stack
                resources = stack.resource_map
                left = sorted(k for k in resources._parsed_resources if k in resources._resource_json_map)
                reason = f"The following resource(s) failed to delete: [{', '.join(left)}]. {conflict.message}"
                stack._add_stack_event("DELETE_FAILED", resource_status_reason=reason)
                stack.status = "DELETE_FAILED"
                # Read by moto's serializer as the stack's StackStatusReason.
                stack.stack_status_reason = reason
            LOG.info("cloudformation: deleting %s failed: %s", name_or_stack_id, conflict.message)
            return None

    CloudFormationBackend.delete_stack = delete_stack_or_fail_on_conflict


# --------------------------------------------------------------------------
# Stack states moto never reaches (test-only)
# --------------------------------------------------------------------------

# moto's stacks never fail: a deletion always completes and a rollback never
# gets stuck. AWS's do, and the provider has a path for each:
# UPDATE_ROLLBACK_FAILED stops an apply with the recovery command, and a
# DELETE_FAILED stack is deleted again. `POST /_rdsrot/stacks` puts a stack
# (by name or id) in such a state:
#   {"stack": "serverlessrepo-x", "status": "UPDATE_ROLLBACK_FAILED"}  now
#   {"stack": "serverlessrepo-x", "fail_deletions": 1}  its next N DeleteStack
#       calls leave it in DELETE_FAILED, as a resource that cannot be deleted
#       does, instead of deleting it
# `GET /_rdsrot/stacks` lists the deletions still to fail.
SETTABLE_STACK_STATUSES = (
    "CREATE_FAILED",
    "ROLLBACK_COMPLETE",
    "ROLLBACK_FAILED",
    "DELETE_FAILED",
    "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE",
    "UPDATE_COMPLETE",
    "CREATE_COMPLETE",
)

_FAILING_DELETIONS = {}
_FAILING_DELETIONS_LOCK = threading.Lock()


def _stacks_named(stack):
    from moto.cloudformation.models import cloudformation_backends

    for account in cloudformation_backends.values():
        for backend in account.values():
            for found in backend.stacks.values():
                if stack in (found.name, found.stack_id):
                    yield found


def install_stack_failures():
    """Lets DeleteStack fail as `fail_deletions` asks (does nothing unasked)."""
    from moto.cloudformation.models import CloudFormationBackend

    delete_stack = CloudFormationBackend.delete_stack

    def delete_stack_or_fail(self, name_or_stack_id):
        for found in list(self.stacks.values()):
            if name_or_stack_id not in (found.name, found.stack_id):
                continue
            with _FAILING_DELETIONS_LOCK:
                left = _FAILING_DELETIONS.get(found.name, 0)
                if left > 0:
                    _FAILING_DELETIONS[found.name] = left - 1
            if left > 0:
                found._add_stack_event("DELETE_IN_PROGRESS", resource_status_reason="User Initiated")
                found._add_stack_event("DELETE_FAILED", resource_status_reason="The following resource(s) failed to delete")
                found.status = "DELETE_FAILED"
                LOG.info("cloudformation: deleting %s fails as asked (%d more)", found.name, left - 1)
                return None
        return delete_stack(self, name_or_stack_id)

    CloudFormationBackend.delete_stack = delete_stack_or_fail


def stacks_control(method, document):
    if method == "GET":
        with _FAILING_DELETIONS_LOCK:
            return 200, {"fail_deletions": dict(_FAILING_DELETIONS)}
    stack = document.get("stack")
    if not isinstance(stack, str) or not stack:
        raise aws_under_load.RuleError("stack is a stack name or id")
    found = list(_stacks_named(stack))
    if not found:
        return 404, {"message": f"no stack {stack}"}
    status = document.get("status")
    if status is not None:
        if status not in SETTABLE_STACK_STATUSES:
            raise aws_under_load.RuleError(f"status is one of {', '.join(SETTABLE_STACK_STATUSES)}, not {status!r}")
        for each in found:
            each._add_stack_event(status)
            each.status = status
        LOG.info("cloudformation: %s set to %s", stack, status)
    failures = document.get("fail_deletions")
    if failures is not None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
            raise aws_under_load.RuleError(f"fail_deletions is a whole number >= 0, not {failures!r}")
        with _FAILING_DELETIONS_LOCK:
            for each in found:
                _FAILING_DELETIONS[each.name] = failures
    return 200, {"stacks": [{"name": each.name, "id": each.stack_id, "status": each.status} for each in found]}


# --------------------------------------------------------------------------
# Serverless Application Repository stand-in
# --------------------------------------------------------------------------

_SIGNING_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_APPLICATION_PATH = re.compile(r"^/applications/(?P<application>.+?)(?P<tail>/changesets|/versions)?/?$")
_SEMANTIC_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_APPLICATION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):serverlessrepo:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):applications/(?P<name>[A-Za-z0-9-]+)$"
)


class RepositoryError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _signing_scope(environ):
    match = _SIGNING_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return (match.group(1), match.group(2)) if match else (None, None)


def _json_response(status, body, error_code=None):
    response = Response(json.dumps(body), status=status, content_type="application/json")
    if error_code:
        response.headers["x-amzn-ErrorType"] = error_code
    return response


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _application_name(application_id):
    match = _APPLICATION_ARN.match(application_id)
    name = match.group("name") if match else None
    if name not in templates.APPLICATIONS:
        raise RepositoryError(404, "NotFoundException", f"Application {application_id} was not found.")
    return name


def _partition(application_id):
    return _APPLICATION_ARN.match(application_id).group("partition")


def _check_version(application_id, name, version):
    """The version asked for (the newest without one), if it is published."""
    partition = _partition(application_id)
    if version is None:
        version = templates.latest_version(name, partition)
    elif not _SEMANTIC_VERSION.match(version):
        raise RepositoryError(400, "BadRequestException", f"Invalid semantic version: {version}")
    if version not in templates.versions(name, partition):
        raise RepositoryError(
            404,
            "NotFoundException",
            f"Application {application_id} does not have a version {version}.",
        )
    return version


def _application_version(application_id, name, version):
    return {
        "applicationId": application_id,
        "creationTime": "2024-01-01T00:00:00.000Z",
        "parameterDefinitions": templates.parameter_definitions(name),
        "requiredCapabilities": templates.REQUIRED_CAPABILITIES,
        "resourcesSupported": True,
        "semanticVersion": version,
        "sourceCodeUrl": "https://example.invalid/aws-secrets-manager-rotation-lambdas",
        "templateUrl": f"https://example.invalid/{name}/{version}/template.yaml",
    }


def get_application(application_id, query):
    name = _application_name(application_id)
    version = _check_version(application_id, name, query.get("semanticVersion"))
    return 200, {
        "applicationId": application_id,
        "author": "AWS",
        "creationTime": "2024-01-01T00:00:00.000Z",
        "description": templates.APPLICATIONS[name],
        "labels": ["SecretsManager", "rotation"],
        "name": name,
        "spdxLicenseId": "MIT-0",
        "version": _application_version(application_id, name, version),
    }


def list_application_versions(application_id):
    name = _application_name(application_id)
    return 200, {
        "versions": [
            {
                "applicationId": application_id,
                "creationTime": "2024-01-01T00:00:00.000Z",
                "semanticVersion": version,
            }
            for version in templates.versions(name, _partition(application_id))
        ]
    }


def put_function_code(application, version, account_id, region):
    """Puts the application's rotation function zip where its template's
    `Code` names it: the stand-in repository's own bucket in the stack's
    account and Region, made when missing."""
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    from rotation_functions import package

    backend = s3_backends[account_id][get_partition(region)]
    bucket = templates.code_bucket(account_id, region)
    try:
        backend.get_bucket(bucket)
    except MissingBucket:
        backend.create_bucket(bucket, region)
    backend.put_object(
        bucket,
        templates.code_key(application, version),
        package.build_zip(package.kind_of(application)),
    )


UPDATABLE_STACK_STATUSES = (
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
)


# A repeated `clientToken` with the same request gets the first answer and
# makes no second change set, as the repository's idempotency token promises.
_ANSWERS_BY_CLIENT_TOKEN = {}
_ANSWERS_BY_CLIENT_TOKEN_LOCK = threading.Lock()


def _answer_once_per_client_token(application_id, request, region, create):
    untokened = {k: v for k, v in request.items() if k != "clientToken"}
    key = (application_id, region, request["clientToken"], json.dumps(untokened, sort_keys=True))
    with _ANSWERS_BY_CLIENT_TOKEN_LOCK:
        if key not in _ANSWERS_BY_CLIENT_TOKEN:
            _ANSWERS_BY_CLIENT_TOKEN[key] = create(application_id, untokened, region)
        else:
            LOG.info("serverlessrepo: clientToken %s repeated: the first answer again", request["clientToken"])
        return _ANSWERS_BY_CLIENT_TOKEN[key]


def create_change_set(application_id, request, region):
    """CreateCloudFormationChangeSet: a CREATE (or UPDATE) change set in moto."""
    from moto.cloudformation.models import cloudformation_backends

    if request.get("clientToken"):
        return _answer_once_per_client_token(application_id, request, region, create_change_set)
    name = _application_name(application_id)
    version = _check_version(application_id, name, request.get("semanticVersion"))
    stack_name = request.get("stackName")
    if not stack_name or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", stack_name):
        raise RepositoryError(400, "BadRequestException", f"Invalid stackName: {stack_name!r}")

    declared = templates.parameters(name)
    overrides = {}
    for override in request.get("parameterOverrides") or []:
        key, value = override.get("name"), override.get("value")
        if key not in declared:
            raise RepositoryError(
                400,
                "BadRequestException",
                f"Invalid parameter override: the template of {name} declares no parameter named '{key}'.",
            )
        overrides[key] = "" if value is None else str(value)
    missing = [p for p in templates.required_parameters(name) if not overrides.get(p)]
    if missing:
        raise RepositoryError(
            400, "BadRequestException", f"Missing values for required parameters: {', '.join(missing)}."
        )
    granted = set(request.get("capabilities") or [])
    lacking = [c for c in templates.REQUIRED_CAPABILITIES if c not in granted]
    if lacking:
        raise RepositoryError(
            400,
            "BadRequestException",
            f"The application {name} requires capabilities {', '.join(lacking)}: acknowledge them in capabilities.",
        )

    backend = cloudformation_backends[DEFAULT_ACCOUNT_ID][region]
    full_stack_name = f"serverlessrepo-{stack_name}"
    existing = [s for s in backend.stacks.values() if s.name == full_stack_name]
    live = [s for s in existing if s.status not in ("REVIEW_IN_PROGRESS", "DELETE_COMPLETE")]
    for stale in (s for s in existing if s.status == "REVIEW_IN_PROGRESS"):
        del backend.stacks[stale.stack_id]
    # CloudFormation updates only a stack at rest in a usable state: one
    # still changing, rolled back from its creation, or stuck in a failed
    # rollback or deletion is refused, and the repository passes the refusal
    # on.
    for stack in live:
        if stack.status not in UPDATABLE_STACK_STATUSES:
            raise RepositoryError(
                400,
                "BadRequestException",
                f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.",
            )
    change_set_type = "UPDATE" if live else "CREATE"

    tags = {t["key"]: t["value"] for t in request.get("tags") or [] if "key" in t}
    tags["serverlessrepo:applicationId"] = application_id
    tags["serverlessrepo:semanticVersion"] = version
    change_set_name = request.get("changeSetName") or f"a{uuid.uuid4().hex}"
    put_function_code(name, version, DEFAULT_ACCOUNT_ID, region)
    change_set_id, stack_id = backend.create_change_set(
        stack_name=full_stack_name,
        change_set_name=change_set_name,
        template=templates.template(name, version),
        parameters=overrides,
        description=request.get("description") or f"{name} {version}",
        change_set_type=change_set_type,
        notification_arns=request.get("notificationArns"),
        tags=tags,
    )
    LOG.info("serverlessrepo: %s change set %s for %s (%s)", change_set_type, change_set_id, full_stack_name, name)
    return 201, {
        "applicationId": application_id,
        "changeSetId": change_set_id,
        "semanticVersion": version,
        "stackId": stack_id,
    }


class ServerlessRepositoryStandIn:
    """WSGI middleware: the repository's calls here, everything else to moto."""

    def __init__(self, moto_app):
        self.moto_app = moto_app

    def _is_repository_call(self, environ):
        _, service = _signing_scope(environ)
        path = environ.get("PATH_INFO", "")
        if service is not None:
            return service == "serverlessrepo"
        return path.startswith("/applications/arn")

    def __call__(self, environ, start_response):
        if not self._is_repository_call(environ):
            return self.moto_app(environ, start_response)
        request = Request(environ)
        try:
            response = self._dispatch(request, environ)
        except RepositoryError as error:
            response = _json_response(error.status, {"errorCode": error.code, "message": error.message}, error.code)
        except Exception as error:  # surfaced as a 500 with the reason, never a hang
            LOG.exception("serverlessrepo stand-in failed")
            response = _json_response(500, {"errorCode": "InternalServerErrorException", "message": str(error)})
        return response(environ, start_response)

    def _dispatch(self, request, environ):
        region, _ = _signing_scope(environ)
        region = region or "us-east-1"
        match = _APPLICATION_PATH.match(request.path)
        if not match:
            raise RepositoryError(404, "NotFoundException", f"No such resource: {request.path}")
        application_id = match.group("application")
        tail = match.group("tail")
        if request.method == "POST" and tail == "/changesets":
            body = json.loads(request.get_data(as_text=True) or "{}")
            status, answer = create_change_set(application_id, body, region)
        elif request.method == "GET" and tail is None:
            status, answer = get_application(application_id, request.args)
        elif request.method == "GET" and tail == "/versions":
            status, answer = list_application_versions(application_id)
        else:
            raise RepositoryError(
                404, "NotFoundException", f"The stand-in does not serve {request.method} {request.path}"
            )
        return _json_response(status, answer)


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


def _exit_when_stdin_closes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        lambda_runtime.shutdown()
        os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop when stdin closes")
    parser.add_argument(
        "--as-moto-does",
        action="store_true",
        help="serve moto without the corrections (to check whether its gaps still exist)",
    )
    parser.add_argument(
        "--quota-scale",
        type=float,
        default=1.0,
        help="AWS request quotas times this factor (1: AWS's real rates, 0: no quotas)",
    )
    args = parser.parse_args(argv)
    if args.quota_scale < 0:
        parser.error("--quota-scale is a number >= 0")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.as_moto_does:
        apply_corrections()
    install_stack_failures()

    aws_under_load.spared_by_faults = function_iam.is_function_credential
    application = aws_under_load.AwsUnderLoad(
        function_iam.FunctionIam(ServerlessRepositoryStandIn(DomainDispatcherApplication(create_backend_app))),
        quota_scale=args.quota_scale,
        controls={"stacks": stacks_control, "iam": function_iam.iam_control, "lambda": lambda_control},
    )
    server = make_server(
        "127.0.0.1",
        args.port,
        application,
        threaded=True,
        request_handler=aws_under_load.ConnectionResettingRequestHandler,
    )
    lambda_runtime.install(f"http://127.0.0.1:{server.server_port}")
    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    print(f"rdsrot-emulator listening on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
