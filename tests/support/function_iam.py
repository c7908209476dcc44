"""IAM as AWS applies it to what a rotation touches.

moto checks no permissions by default, and turning its own checks on would
refuse the tests' made-up keys too. Two checks are modelled here instead:

- `FunctionIam`, a WSGI layer in front of moto: a request signed with
  credentials that `lambda_runtime.py` minted for a function's execution
  role is allowed only by that role's identity policies (inline and
  attached managed): an explicit Deny wins, then an Allow is needed. Every
  other request (the tests', the provider's) passes unchecked.
- `secrets_manager_may_invoke`: whether a function's resource-based policy
  lets Secrets Manager invoke it for a given secret, as `RotateSecret`
  checks before it starts.

Conditions are not evaluated: a statement with a `Condition` is taken as not
matching when it allows and as matching when it denies (fail closed).
"""

import json
import logging
import re
import threading
from urllib.parse import unquote

import aws_under_load

LOG = logging.getLogger("rdsrot-emulator.iam")

_FUNCTION_PRINCIPALS = {}
_FUNCTION_PRINCIPALS_LOCK = threading.Lock()

# Calls AWS answers whatever the caller's policies say.
_ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}

# restJson calls whose IAM action is named differently from the API.
_ACTION_OF_CALL = {"lambda:Invoke": "lambda:InvokeFunction"}


class FunctionPrincipal:
    def __init__(self, role_arn, session_name, assumed_role_arn, account):
        self.role_arn = role_arn
        self.role_name = role_arn.rsplit("/", 1)[-1]
        self.session_name = session_name
        self.assumed_role_arn = assumed_role_arn
        self.account = account


def register_function_credentials(access_key_id, role_arn, session_name, assumed_role_arn, account):
    """Requests signed with `access_key_id` are checked against `role_arn`'s policies."""
    with _FUNCTION_PRINCIPALS_LOCK:
        _FUNCTION_PRINCIPALS[access_key_id] = FunctionPrincipal(role_arn, session_name, assumed_role_arn, account)


def _principal_of(access_key_id):
    with _FUNCTION_PRINCIPALS_LOCK:
        return _FUNCTION_PRINCIPALS.get(access_key_id)


# --------------------------------------------------------------------------
# Policy evaluation
# --------------------------------------------------------------------------


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _wildcard(pattern, text, ignore_case):
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, text, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _matches_any(patterns, text, ignore_case):
    return any(_wildcard(p, text, ignore_case) for p in patterns)


def _statement_applies(statement, action, resource):
    """Whether the statement's action and resource elements cover the request."""
    if "Action" in statement:
        action_ok = _matches_any(_as_list(statement["Action"]), action, ignore_case=True)
    else:
        action_ok = not _matches_any(_as_list(statement.get("NotAction")), action, ignore_case=True)
    if "Resource" in statement:
        resource_ok = _matches_any(_as_list(statement["Resource"]), resource, ignore_case=False)
    else:
        resource_ok = not _matches_any(_as_list(statement.get("NotResource")), resource, ignore_case=False)
    return action_ok and resource_ok


def _documents(text):
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def role_policy_documents(account, role_name):
    """The role's inline and attached managed policy documents (none if the role is gone)."""
    from moto.iam.models import iam_backends

    for backend in iam_backends[account].values():
        role = backend.roles.get(role_name) or next(
            (r for r in backend.roles.values() if r.name == role_name), None
        )
        if role is None:
            continue
        documents = [_documents(text) for text in role.policies.values()]
        for managed in role.managed_policies.values():
            default = next((v for v in managed.versions if v.is_default), None)
            if default is not None and default.document:
                documents.append(_documents(default.document))
        return documents
    return []


def evaluate(documents, action, resource):
    """`explicit_deny`, `allow` or `implicit_deny`, in IAM's order."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not _statement_applies(statement, action, resource):
                continue
            effect = statement.get("Effect")
            if effect == "Deny":
                return "explicit_deny"
            if effect == "Allow" and not statement.get("Condition"):
                allowed = True
    return "allow" if allowed else "implicit_deny"


# --------------------------------------------------------------------------
# The WSGI layer
# --------------------------------------------------------------------------


def _secret_arn(secret_id, account, region):
    """The full ARN of the secret a request names (a name, a partial or full ARN)."""
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[account][region]
    if secret_id in backend.secrets:
        return backend.secrets[secret_id].arn
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


def _resource_of(name, environ, account):
    if name.service != "secretsmanager":
        return "*"
    try:
        body = json.loads(aws_under_load._take_body(environ) or b"{}")
    except ValueError:
        return "*"
    secret_id = body.get("SecretId") or body.get("Name")
    if not isinstance(secret_id, str) or not secret_id:
        return "*"
    return _secret_arn(secret_id, account, name.region)


def denial_message(principal, action, resource, decision):
    reason = (
        "with an explicit deny in an identity-based policy"
        if decision == "explicit_deny"
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {principal.assumed_role_arn} is not authorized to perform: {action} on resource: {resource} {reason}"


def _denial(name, message):
    if name.service == "secretsmanager":
        body = json.dumps({"__type": "AccessDeniedException", "Message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1")]
        return "400 Bad Request", headers, body
    if name.protocol == "query":
        return aws_under_load.error_answer(name, 403, "AccessDenied", message)
    if name.protocol == "json":
        return aws_under_load.error_answer(name, 400, "AccessDeniedException", message)
    return aws_under_load.error_answer(name, 403, "AccessDeniedException", message)


def is_function_credential(access_key):
    """Whether `access_key` was minted for a function's role."""
    return access_key is not None and _principal_of(access_key) is not None


class FunctionIam:
    """Checks the calls functions make with their role's credentials."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        name = aws_under_load.name_request(environ)
        principal = _principal_of(name.access_key) if name is not None else None
        if principal is None:
            return self.app(environ, start_response)
        action = f"{name.service}:{name.call}"
        action = _ACTION_OF_CALL.get(action, action)
        if action in _ALWAYS_ALLOWED:
            return self.app(environ, start_response)
        resource = _resource_of(name, environ, principal.account)
        decision = evaluate(role_policy_documents(principal.account, principal.role_name), action, resource)
        if decision == "allow":
            return self.app(environ, start_response)
        message = denial_message(principal, action, resource, decision)
        LOG.info("iam: %s", message)
        status, headers, body = _denial(name, message)
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]


# --------------------------------------------------------------------------
# Who may invoke a function
# --------------------------------------------------------------------------

SECRETS_MANAGER_PRINCIPAL = "secretsmanager.amazonaws.com"


def _condition_holds(operator, key, wanted, secret_arn, account):
    """One condition of an invoke statement, for a call from Secrets Manager."""
    key = key.lower()
    values = _as_list(wanted)
    if key == "aws:sourcearn":
        if operator in ("ArnLike", "StringLike"):
            return _matches_any(values, secret_arn, ignore_case=False)
        if operator in ("ArnEquals", "StringEquals"):
            return secret_arn in values
    if key == "aws:sourceaccount" and operator == "StringEquals":
        return account in values
    return False  # a condition not understood grants nothing


def _grants_secrets_manager(statement, secret_arn, account):
    if statement.get("Effect", "Allow") != "Allow":
        return False
    principal = statement.get("Principal")
    services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
    if SECRETS_MANAGER_PRINCIPAL not in services:
        return False
    if not _matches_any(_as_list(statement.get("Action")), "lambda:InvokeFunction", ignore_case=True):
        return False
    for operator, conditions in (statement.get("Condition") or {}).items():
        for key, wanted in conditions.items():
            if not _condition_holds(operator, key, wanted, secret_arn, account):
                return False
    return True


def secrets_manager_may_invoke(fn, secret_arn, account):
    """Whether `fn`'s resource-based policy lets Secrets Manager invoke it for this secret."""
    return any(_grants_secrets_manager(s, secret_arn, account) for s in fn.policy.statements)
