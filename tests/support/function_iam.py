"""IAM as AWS applies it to what a rotation touches.

moto checks no permissions by default, and turning its own checks on would
refuse the tests' made-up keys too. Two checks are modelled here instead:

- `FunctionIam`, a WSGI layer in front of moto: a request signed by an
  enforced principal is allowed only by that principal's identity policies
  (inline, attached managed, and its groups'), in IAM's order: an explicit
  Deny wins, then an Allow is needed. Enforced principals are the
  credentials `lambda_runtime.py` minted for a function's execution role,
  and the access keys of an IAM user, or the session of a role assumed
  through STS, tagged `rdsrot:iam` = `enforced`. Every other request (the
  tests', the provider's `testing` keys) passes unchecked. What
  CloudFormation does for such a principal's stack (no service role) is
  checked as that principal, as AWS does.
- `secrets_manager_may_invoke`: whether a function's resource-based policy
  lets Secrets Manager invoke it for a given secret, as `RotateSecret`
  checks before it starts.

Conditions are evaluated for the operators and keys listed in
`_OPERATORS` and `_context_value`; an operator or key not understood
fails closed (an Allow does not apply, a Deny does).
"""

import json
import logging
import re
import threading
import uuid
from urllib.parse import parse_qs, unquote

import aws_under_load

LOG = logging.getLogger("rdsrot-emulator.iam")

ENFORCED_TAG_KEY = "rdsrot:iam"
ENFORCED_TAG_VALUE = "enforced"

_FUNCTION_PRINCIPALS = {}
_FUNCTION_PRINCIPALS_LOCK = threading.Lock()

# Calls AWS answers whatever the caller's policies say.
_ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}

# Calls whose IAM action is named differently from the API.
_ACTION_OF_CALL = {"lambda:Invoke": "lambda:InvokeFunction"}


class Principal:
    """Who signed a request, and where its identity policies live."""

    def __init__(self, arn, account, kind, name):
        self.arn = arn
        self.account = account
        self.kind = kind  # "role" or "user"
        self.name = name

    # Kept for the messages and logs written before users were enforced.
    @property
    def assumed_role_arn(self):
        return self.arn

    def documents(self):
        if self.kind == "user":
            return user_policy_documents(self.account, self.name)
        return role_policy_documents(self.account, self.name)


class FunctionPrincipal(Principal):
    def __init__(self, role_arn, session_name, assumed_role_arn, account):
        super().__init__(assumed_role_arn, account, "role", role_arn.rsplit("/", 1)[-1])
        self.role_arn = role_arn
        self.role_name = self.name
        self.session_name = session_name


def register_function_credentials(access_key_id, role_arn, session_name, assumed_role_arn, account):
    """Requests signed with `access_key_id` are checked against `role_arn`'s policies."""
    with _FUNCTION_PRINCIPALS_LOCK:
        _FUNCTION_PRINCIPALS[access_key_id] = FunctionPrincipal(role_arn, session_name, assumed_role_arn, account)


def _function_principal_of(access_key_id):
    with _FUNCTION_PRINCIPALS_LOCK:
        return _FUNCTION_PRINCIPALS.get(access_key_id)


def _tag_pairs(tags):
    """moto keeps tags as a list of {Key, Value}, a {key: {Key, Value}} or a {key: value}."""
    if not tags:
        return {}
    if isinstance(tags, list):
        return {t.get("Key"): t.get("Value") for t in tags if isinstance(t, dict)}
    return {k: (v.get("Value") if isinstance(v, dict) else v) for k, v in tags.items()}


def _enforced_principal_of(access_key_id):
    """An IAM user's key or an STS session of a role, tagged as enforced; else None."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    for account, by_partition in list(iam_backends.items()):
        for backend in list(by_partition.values()):
            user = backend.get_user_from_access_key_id(access_key_id)
            if user is not None:
                tags = _tag_pairs(backend.tagger.list_tags_for_resource(user.arn)["Tags"])
                if tags.get(ENFORCED_TAG_KEY) == ENFORCED_TAG_VALUE:
                    return Principal(user.arn, account, "user", user.name)
                return None
    for account, by_partition in list(sts_backends.items()):
        for backend in list(by_partition.values()):
            session = backend.get_assumed_role_from_access_key(access_key_id)
            if session is None:
                continue
            role_name = session.role_arn.rsplit("/", 1)[-1]
            role = _role(account, role_name)
            if role is not None and _tag_pairs(role.tags).get(ENFORCED_TAG_KEY) == ENFORCED_TAG_VALUE:
                arn = f"arn:aws:sts::{account}:assumed-role/{role_name}/{session.session_name}"
                return Principal(arn, account, "role", role_name)
            return None
    return None


def _principal_of(access_key_id):
    if access_key_id is None or access_key_id == "testing":
        return None
    return _function_principal_of(access_key_id) or _enforced_principal_of(access_key_id)


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


def _arn_like(pattern, arn):
    """ArnLike: the six colon-separated parts are matched one by one."""
    wanted = pattern.split(":", 5)
    given = arn.split(":", 5)
    if len(wanted) != 6 or len(given) != 6:
        return False
    return all(_wildcard(w, g, ignore_case=False) for w, g in zip(wanted, given))


def _resource_matches(pattern, resource):
    """A Resource element against an ARN, as IAM matches them (`*` spans colons)."""
    return _wildcard(pattern, resource, ignore_case=False)


# Condition operators: how one value of the request compares with one value
# of the policy. The negated ones hold when no policy value matches.
_OPERATORS = {
    "StringEquals": (lambda want, got: want == got, False),
    "StringNotEquals": (lambda want, got: want == got, True),
    "StringEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda want, got: want.lower() == got.lower(), True),
    "StringLike": (lambda want, got: _wildcard(want, got, ignore_case=False), False),
    "StringNotLike": (lambda want, got: _wildcard(want, got, ignore_case=False), True),
    "ArnEquals": (lambda want, got: want == got, False),
    "ArnNotEquals": (lambda want, got: want == got, True),
    "ArnLike": (_arn_like, False),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda want, got: want.lower() == got.lower(), False),
}

_UNKNOWN = object()


class RequestContext:
    """The request as IAM sees it: action, resource and condition keys."""

    def __init__(self, action, resource, keys=None):
        self.action = action
        self.resource = resource
        # Lower-cased key -> list of values; a key not present is absent.
        self.keys = {k.lower(): _as_list(v) for k, v in (keys or {}).items()}

    def value(self, key):
        """The key's values, None when the request has no such key, _UNKNOWN when
        the emulator does not know the key at all."""
        key = key.lower()
        if key in self.keys:
            return self.keys[key]
        if key in _KEYS_KNOWN_ABSENT or key.startswith("aws:resourcetag/"):
            return None
        return _UNKNOWN


# Keys the emulator understands: when the request does not carry one, it is
# absent (so only the IfExists and negated forms hold), not unknown.
_KEYS_KNOWN_ABSENT = {
    "aws:sourcearn",
    "aws:sourceaccount",
    "iam:passedtoservice",
    "secretsmanager:resource/allowrotationlambdaarn",
    "kms:viaservice",
}


def _condition_holds(operator, key, wanted, context):
    """One condition block entry; None when it cannot be evaluated (fail closed)."""
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    if base not in _OPERATORS:
        return None
    compare, negated = _OPERATORS[base]
    got = context.value(key)
    if got is _UNKNOWN:
        return None
    if got is None:
        return True if if_exists or negated else False
    wanted = [str(w) for w in _as_list(wanted)]
    matched = any(compare(w, str(g)) for w in wanted for g in got)
    return not matched if negated else matched


def _conditions_hold(conditions, context):
    """True, False, or None when an operator or key is not understood."""
    for operator, entries in (conditions or {}).items():
        if not isinstance(entries, dict):
            return None
        for key, wanted in entries.items():
            held = _condition_holds(operator, key, wanted, context)
            if held is not True:
                return held
    return True


def _statement_applies(statement, action, resource):
    """Whether the statement's action and resource elements cover the request."""
    if "Action" in statement:
        action_ok = _matches_any(_as_list(statement["Action"]), action, ignore_case=True)
    else:
        action_ok = not _matches_any(_as_list(statement.get("NotAction")), action, ignore_case=True)
    if "Resource" in statement:
        resource_ok = any(_resource_matches(p, resource) for p in _as_list(statement["Resource"]))
    else:
        resource_ok = not any(_resource_matches(p, resource) for p in _as_list(statement.get("NotResource")))
    return action_ok and resource_ok


def _documents(text):
    if isinstance(text, dict):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(unquote(text))


def _default_document(managed):
    default = next((v for v in managed.versions if v.is_default), None)
    if default is not None and default.document:
        return _documents(default.document)
    return None


def _role(account, role_name):
    from moto.iam.models import iam_backends

    for backend in iam_backends[account].values():
        role = backend.roles.get(role_name) or next(
            (r for r in backend.roles.values() if r.name == role_name), None
        )
        if role is not None:
            return role
    return None


def role_policy_documents(account, role_name):
    """The role's inline and attached managed policy documents (none if the role is gone)."""
    role = _role(account, role_name)
    if role is None:
        return []
    documents = [_documents(text) for text in role.policies.values()]
    documents += [d for d in map(_default_document, role.managed_policies.values()) if d]
    return documents


def user_policy_documents(account, user_name):
    """The user's inline and attached managed policies, and those of its groups."""
    from moto.iam.models import iam_backends

    documents = []
    for backend in iam_backends[account].values():
        user = backend.users.get(user_name)
        if user is None:
            continue
        documents += [_documents(text) for text in user.policies.values()]
        documents += [d for d in map(_default_document, user.managed_policies.values()) if d]
        for group in backend.groups.values():
            if user in group.users:
                documents += [_documents(text) for text in group.policies.values()]
                documents += [d for d in map(_default_document, group.managed_policies.values()) if d]
    return documents


def evaluate(documents, action, resource, context=None):
    """`explicit_deny`, `allow` or `implicit_deny`, in IAM's order."""
    context = context or RequestContext(action, resource)
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if not _statement_applies(statement, action, resource):
                continue
            held = _conditions_hold(statement.get("Condition"), context)
            effect = statement.get("Effect")
            if effect == "Deny" and held is not False:
                return "explicit_deny"
            if effect == "Allow" and held is True:
                allowed = True
    return "allow" if allowed else "implicit_deny"


# --------------------------------------------------------------------------
# What a request acts on
# --------------------------------------------------------------------------


def _secret(secret_id, account, region):
    from moto.secretsmanager.models import secretsmanager_backends

    backend = secretsmanager_backends[account][region]
    if secret_id in backend.secrets:
        return backend.secrets[secret_id]
    return None


def _secret_arn(secret_id, account, region):
    """The full ARN of the secret a request names (a name, a partial or full ARN)."""
    secret = _secret(secret_id, account, region)
    if secret is not None:
        return secret.arn
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


def _lambda_function(name_or_arn, account, region):
    from moto.awslambda.models import lambda_backends

    try:
        return lambda_backends[account][region].get_function(name_or_arn)
    except Exception:  # noqa: BLE001 - any lookup failure means "not there"
        return None


def _function_arn(name_or_arn, account, region):
    name_or_arn = unquote(name_or_arn)
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        return ":".join(parts[:7])
    name = name_or_arn.split(":", 1)[0]
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def _form(environ):
    fields = aws_under_load._query(environ)
    body = aws_under_load._take_body(environ).decode("utf-8", "replace")
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        fields.update(parse_qs(body, keep_blank_values=True))
    return {k: v[0] for k, v in fields.items() if v}


def _json_body(environ):
    try:
        body = json.loads(aws_under_load._take_body(environ) or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _stack_arn(stack_name, account, region):
    if stack_name.startswith("arn:"):
        return stack_name
    from moto.cloudformation.models import cloudformation_backends

    for stack in list(cloudformation_backends[account][region].stacks.values()):
        if stack.name == stack_name and stack.status != "DELETE_COMPLETE":
            return stack.stack_id
    return f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/*"


def _change_set_stack_arn(change_set, account, region):
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[account][region]
    found = backend.change_sets.get(change_set)
    return found.stack_id if found is not None else None


def request_context(name, environ, account):
    """Action, resource and condition keys of a signed request."""
    action = f"{name.service}:{name.call}"
    action = _ACTION_OF_CALL.get(action, action)
    region = name.region
    keys = {}
    resource = "*"
    if name.service == "secretsmanager":
        body = _json_body(environ)
        secret_id = body.get("SecretId") or body.get("Name")
        if isinstance(secret_id, str) and secret_id:
            resource = _secret_arn(secret_id, account, region)
            secret = _secret(secret_id, account, region)
            if secret is not None:
                for key, value in _tag_pairs(secret.tags).items():
                    keys[f"aws:ResourceTag/{key}"] = value
                if secret.rotation_lambda_arn:
                    keys["secretsmanager:resource/AllowRotationLambdaArn"] = secret.rotation_lambda_arn
    elif name.service == "lambda":
        path = aws_under_load._raw_path(environ)
        match = re.search(r"/functions/([^/?]+)", path) or re.search(r"/tags/([^/?]+)", path)
        if match:
            resource = _function_arn(match.group(1), account, region)
        elif name.call == "CreateFunction":
            function_name = _json_body(environ).get("FunctionName")
            if isinstance(function_name, str):
                resource = _function_arn(function_name, account, region)
        if resource != "*":
            fn = _lambda_function(resource, account, region)
            if fn is not None:
                for key, value in _tag_pairs(getattr(fn, "tags", None)).items():
                    keys[f"aws:ResourceTag/{key}"] = value
    elif name.service == "iam":
        form = _form(environ)
        if "RoleName" in form:
            role = _role(account, form["RoleName"])
            path = role.path if role is not None else "/"
            resource = f"arn:aws:iam::{account}:role{path}{form['RoleName']}"
            if role is not None:
                for key, value in _tag_pairs(role.tags).items():
                    keys[f"aws:ResourceTag/{key}"] = value
        elif "UserName" in form:
            resource = f"arn:aws:iam::{account}:user/{form['UserName']}"
    elif name.service == "cloudformation":
        form = _form(environ)
        if form.get("StackName"):
            resource = _stack_arn(form["StackName"], account, region)
        elif form.get("ChangeSetName", "").startswith("arn:"):
            resource = _change_set_stack_arn(form["ChangeSetName"], account, region) or "*"
    elif name.service == "serverlessrepo":
        match = re.search(r"/applications/([^/?]+)", aws_under_load._raw_path(environ))
        if match:
            resource = unquote(match.group(1))
    elif name.service == "logs":
        group = _json_body(environ).get("logGroupName")
        if isinstance(group, str):
            resource = f"arn:aws:logs:{region}:{account}:log-group:{group}:*"
    return RequestContext(action, resource, keys)


# --------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------


def denial_message(principal, action, resource, decision):
    reason = (
        "with an explicit deny in an identity-based policy"
        if decision == "explicit_deny"
        else f"because no identity-based policy allows the {action} action"
    )
    return f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} {reason}"


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
    return access_key is not None and _function_principal_of(access_key) is not None


_DECISIONS = {}
_DECISIONS_LOCK = threading.Lock()


def _record(principal, action, resource, decision):
    """Keeps what each enforced user or role was allowed and refused, for
    tests that check a policy is no wider than what is used."""
    if isinstance(principal, FunctionPrincipal):
        return
    with _DECISIONS_LOCK:
        mine = _DECISIONS.setdefault(principal.arn, {"allowed": {}, "refused": {}})
        kind = "allowed" if decision == "allow" else "refused"
        mine[kind].setdefault(action, set()).add(resource)


def iam_control(method, document):
    """`GET /_rdsrot/iam`: per enforced principal, the actions it was allowed
    and refused (with their resources); `DELETE` forgets them."""
    with _DECISIONS_LOCK:
        if method == "DELETE":
            _DECISIONS.clear()
        answer = {
            arn: {kind: {a: sorted(r) for a, r in sorted(by.items())} for kind, by in kinds.items()}
            for arn, kinds in _DECISIONS.items()
        }
    return 200, {"principals": answer}


def _first_refusal(principal, contexts):
    """The first of `contexts` the principal may not do, as (context, message), or None."""
    documents = principal.documents()
    for context in contexts:
        decision = evaluate(documents, context.action, context.resource, context)
        _record(principal, context.action, context.resource, decision)
        if decision != "allow":
            return context, denial_message(principal, context.action, context.resource, decision)
    return None


def _rotation_function_context(environ, region, account):
    """RotateSecret also needs `lambda:InvokeFunction` on the function it
    configures (AWS: "you also need lambda:InvokeFunction")."""
    body = _json_body(environ)
    function = body.get("RotationLambdaARN")
    if not isinstance(function, str) or not function:
        secret_id = body.get("SecretId")
        secret = _secret(secret_id, account, region) if isinstance(secret_id, str) else None
        function = secret.rotation_lambda_arn if secret is not None else None
    if not function:
        return []
    return [RequestContext("lambda:InvokeFunction", _function_arn(function, account, region))]


class FunctionIam:
    """Checks the calls enforced principals make, and what CloudFormation and
    the repository do for them."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        name = aws_under_load.name_request(environ)
        principal = _principal_of(name.access_key) if name is not None else None
        if principal is None:
            return self.app(environ, start_response)
        context = request_context(name, environ, principal.account)
        if context.action in _ALWAYS_ALLOWED:
            return self.app(environ, start_response)
        contexts = [context]
        if context.action == "serverlessrepo:CreateCloudFormationChangeSet":
            contexts += change_set_contexts(environ, name.region, principal.account)
        if context.action == "secretsmanager:RotateSecret":
            contexts += _rotation_function_context(environ, name.region, principal.account)
        refused = _first_refusal(principal, contexts)
        if refused is None:
            answered = act_as_caller(principal, name, environ, start_response)
            if answered is not None:
                return answered
            if context.action == "lambda:GetFunction" and not _may_list_tags(principal, context):
                return _without_tags(self.app, environ, start_response)
            return self.app(environ, start_response)
        _, message = refused
        LOG.info("iam: %s", message)
        status, headers, body = _denial(name, message)
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]


def _may_list_tags(principal, context):
    """GetFunction answers a function's tags only to a caller its policies
    allow `lambda:ListTags` on the function (AWS's GetFunction reference:
    "Lambda returns tag data only if you have explicit allow permissions
    for lambda:ListTags"); the call itself is not refused."""
    tags_context = RequestContext("lambda:ListTags", context.resource, dict(context.keys))
    decision = evaluate(principal.documents(), tags_context.action, tags_context.resource, tags_context)
    _record(principal, tags_context.action, tags_context.resource, decision)
    return decision == "allow"


def _without_tags(app, environ, start_response):
    """Runs GetFunction and takes `Tags` out of a successful answer."""
    answered = {}

    def keep(status, headers, exc_info=None):
        answered["status"], answered["headers"] = status, headers
        return lambda data: None

    body = b"".join(app(environ, keep))
    status, headers = answered["status"], answered["headers"]
    if status.startswith("200"):
        document = json.loads(body or b"{}")
        document.pop("Tags", None)
        body = json.dumps(document).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return [body]


# --------------------------------------------------------------------------
# CloudFormation and the repository, acting for the caller
# --------------------------------------------------------------------------
#
# A stack made without a service role is built with its caller's
# permissions: each resource handler's calls are authorized as the caller,
# and a refused one fails that resource, the stack rolling back. The
# repository's CreateCloudFormationChangeSet likewise creates the change set
# as its caller. moto makes the resources inside its own process, so the
# calls a handler would make are listed here per resource type and checked
# before moto is let to act.

_SAM_TRANSFORM = "arn:aws:cloudformation:{region}:aws:transform/Serverless-2016-10-31"
_QUERY_NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


def change_set_contexts(environ, region, account):
    """What the repository asks CloudFormation for, as the caller: a change set
    on the stack, with the SAM transform the real templates use."""
    stack_name = _json_body(environ).get("stackName")
    if not isinstance(stack_name, str) or not stack_name:
        return []
    stack = _stack_arn(f"serverlessrepo-{stack_name}", account, region)
    return [
        RequestContext("cloudformation:CreateChangeSet", stack),
        RequestContext("cloudformation:CreateChangeSet", _SAM_TRANSFORM.format(region=region)),
    ]


def _resolve(value, parameters, conditions, region, account):
    """Enough of CloudFormation's intrinsic functions to name what the stand-in
    templates make; what cannot be known before creation stays None."""
    again = lambda v: _resolve(v, parameters, conditions, region, account)  # noqa: E731
    if isinstance(value, list):
        return [again(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1:
        return {k: again(v) for k, v in value.items()}
    (function, argument), = value.items()
    pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws", "AWS::NoValue": None}
    if function == "Ref":
        if argument in pseudo:
            return pseudo[argument]
        return parameters.get(argument)
    if function == "Fn::Sub":
        text = argument if isinstance(argument, str) else argument[0]
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(pseudo.get(m.group(1), parameters.get(m.group(1), ""))), text)
    if function == "Fn::Join":
        separator, items = argument
        items = again(items)
        items = items if isinstance(items, list) else [items]
        return separator.join(str(i) for i in items if i is not None)
    if function == "Fn::Equals":
        left, right = again(argument)
        return left == right
    if function == "Fn::Not":
        return not again(argument[0])
    if function == "Fn::If":
        name, yes, no = argument
        return again(yes) if again(conditions.get(name)) else again(no)
    if function == "Fn::GetAtt":
        return None
    return {function: again(argument)}


def _as_parameters(parameters):
    if isinstance(parameters, dict):
        return {k: v for k, v in parameters.items()}
    return {p.get("ParameterKey"): p.get("ParameterValue") for p in parameters or []}


def _cloudformation_backend(account, region):
    from moto.cloudformation.models import cloudformation_backends

    return cloudformation_backends[account][region]


def _physical(stack, logical_id):
    """The object moto made for a resource, or None (never makes one)."""
    resources = getattr(stack.resource_map, "_parsed_resources", {})
    made = resources.get(logical_id)
    return made if hasattr(made, "__class__") and not isinstance(made, (str, list, dict)) else None


def _resource_contexts(stack, template, parameters, operation, account, region):
    """(logical id, RequestContext) for each call the resource handlers make."""
    parameters = {
        name: spec.get("Default")
        for name, spec in (template.get("Parameters") or {}).items()
        if isinstance(spec, dict)
    } | parameters
    for name, spec in (template.get("Parameters") or {}).items():
        if isinstance(spec, dict) and spec.get("Type") == "CommaDelimitedList" and isinstance(parameters.get(name), str):
            parameters[name] = [p for p in parameters[name].split(",") if p]
    conditions = template.get("Conditions") or {}
    tagged = bool(stack.tags)
    role_arns = {}
    calls = []
    resources = template.get("Resources") or {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        made = _physical(stack, logical_id)
        arn = getattr(made, "arn", None) or f"arn:aws:iam::{account}:role/{stack.name}-{logical_id}-NEW"
        role_arns[logical_id] = arn
        properties = resource.get("Properties") or {}
        if operation == "create":
            wanted = ["iam:CreateRole", "iam:GetRole"]
            wanted += ["iam:PutRolePolicy"] if properties.get("Policies") else []
            wanted += ["iam:AttachRolePolicy"] if properties.get("ManagedPolicyArns") else []
            wanted += ["iam:TagRole"] if tagged else []
        elif operation == "update":
            wanted = ["iam:GetRole", "iam:UpdateAssumeRolePolicy"]
            wanted += ["iam:PutRolePolicy"] if properties.get("Policies") else []
            wanted += ["iam:TagRole"] if tagged else []
        else:
            if made is None:
                continue
            # The handler lists what the role holds before it removes what
            # the template declared.
            wanted = ["iam:ListRolePolicies", "iam:ListAttachedRolePolicies"]
            wanted += ["iam:DeleteRolePolicy"] if properties.get("Policies") else []
            wanted += ["iam:DetachRolePolicy"] if properties.get("ManagedPolicyArns") else []
            wanted += ["iam:DeleteRole"]
        calls += [(logical_id, RequestContext(a, arn)) for a in wanted]
    functions = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        properties = _resolve(resource.get("Properties") or {}, parameters, conditions, region, account)
        made = _physical(stack, logical_id)
        name = properties.get("FunctionName") or f"{stack.name}-{logical_id}-NEW"
        arn = getattr(made, "function_arn", None) or _function_arn(name, account, region)
        functions[logical_id] = arn
        role = resource.get("Properties", {}).get("Role")
        role_arn = next(iter(role_arns.values()), "*")
        if isinstance(role, dict) and "Fn::GetAtt" in role:
            role_arn = role_arns.get(role["Fn::GetAtt"][0], role_arn)
        pass_role = RequestContext("iam:PassRole", role_arn, {"iam:PassedToService": "lambda.amazonaws.com"})
        in_vpc = bool((properties.get("VpcConfig") or {}).get("SubnetIds"))
        vpc = [RequestContext(a, "*") for a in ("ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs")]
        if operation == "create":
            wanted = [RequestContext("lambda:CreateFunction", arn), RequestContext("lambda:GetFunction", arn), pass_role]
            wanted += vpc if in_vpc else []
            wanted += [RequestContext("lambda:TagResource", arn)] if tagged else []
        elif operation == "update":
            wanted = [
                RequestContext("lambda:GetFunction", arn),
                RequestContext("lambda:UpdateFunctionCode", arn),
                RequestContext("lambda:UpdateFunctionConfiguration", arn),
                pass_role,
            ]
            wanted += vpc if in_vpc else []
            wanted += [RequestContext("lambda:TagResource", arn)] if tagged else []
        else:
            if made is None:
                continue
            wanted = [RequestContext("lambda:DeleteFunction", arn)]
        calls += [(logical_id, c) for c in wanted]
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Permission":
            continue
        target = resource.get("Properties", {}).get("FunctionName")
        arn = next(iter(functions.values()), "*")
        if isinstance(target, dict) and "Fn::GetAtt" in target:
            arn = functions.get(target["Fn::GetAtt"][0], arn)
        if operation == "create":
            calls.append((logical_id, RequestContext("lambda:AddPermission", arn)))
        elif operation == "delete" and _physical(stack, logical_id) is not None:
            calls.append((logical_id, RequestContext("lambda:RemovePermission", arn)))
    return calls


def _fail_stack(stack, logical_id, resource_type, operation, message):
    """Leaves the stack as AWS does when one resource handler is refused."""
    from moto.cloudformation.models import Event

    service = resource_type.split("::")[1]
    reason = (
        f'Resource handler returned message: "{message} (Service: {service}, Status Code: 403)" '
        "(HandlerErrorCode: AccessDenied)"
    )

    def event(logical, kind, status, why):
        stack.events.append(
            Event(
                stack_id=stack.stack_id,
                stack_name=stack.name,
                logical_resource_id=logical,
                physical_resource_id=stack.stack_id if kind == "AWS::CloudFormation::Stack" else "",
                resource_type=kind,
                resource_status=status,
                resource_status_reason=why,
                resource_properties=None,
            )
        )

    if operation == "create":
        event(stack.name, "AWS::CloudFormation::Stack", "CREATE_IN_PROGRESS", "User Initiated")
        event(logical_id, resource_type, "CREATE_FAILED", reason)
        event(stack.name, "AWS::CloudFormation::Stack", "ROLLBACK_IN_PROGRESS",
              f"The following resource(s) failed to create: [{logical_id}]. Rollback requested by user.")
        event(stack.name, "AWS::CloudFormation::Stack", "ROLLBACK_COMPLETE", None)
        stack.status = "ROLLBACK_COMPLETE"
    elif operation == "update":
        event(stack.name, "AWS::CloudFormation::Stack", "UPDATE_IN_PROGRESS", "User Initiated")
        event(logical_id, resource_type, "UPDATE_FAILED", reason)
        event(stack.name, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_IN_PROGRESS",
              f"The following resource(s) failed to update: [{logical_id}].")
        event(stack.name, "AWS::CloudFormation::Stack", "UPDATE_ROLLBACK_COMPLETE", None)
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
    else:
        event(stack.name, "AWS::CloudFormation::Stack", "DELETE_IN_PROGRESS", "User Initiated")
        event(logical_id, resource_type, "DELETE_FAILED", reason)
        event(stack.name, "AWS::CloudFormation::Stack", "DELETE_FAILED",
              f"The following resource(s) failed to delete: [{logical_id}]. ")
        stack.status = "DELETE_FAILED"


def _accepted(call, start_response):
    body = (
        f'<{call}Response xmlns="{_QUERY_NAMESPACE}"><{call}Result/>'
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{call}Response>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def act_as_caller(principal, name, environ, start_response):
    """Runs the resource handlers' checks of an ExecuteChangeSet or DeleteStack;
    answers the call itself when one is refused (the stack fails), else None."""
    if name.service != "cloudformation" or name.call not in ("ExecuteChangeSet", "DeleteStack"):
        return None
    form = _form(environ)
    backend = _cloudformation_backend(principal.account, name.region)
    if name.call == "ExecuteChangeSet":
        wanted = form.get("ChangeSetName", "")
        change_set = backend.change_sets.get(wanted) or next(
            (c for c in backend.change_sets.values()
             if c.change_set_name == wanted and form.get("StackName") in (None, c.stack_name, c.stack_id)),
            None,
        )
        if change_set is None or change_set.role_arn or change_set.execution_status not in (None, "AVAILABLE"):
            return None
        stack = backend.stacks.get(change_set.stack_id)
        if stack is None:
            return None
        operation = "create" if change_set.change_set_type == "CREATE" else "update"
        template, parameters = change_set.template_dict, _as_parameters(change_set.parameters)
    else:
        stack_name = form.get("StackName", "")
        stack = next(
            (s for s in backend.stacks.values()
             if stack_name in (s.name, s.stack_id) and s.status != "DELETE_COMPLETE"),
            None,
        )
        if stack is None or stack.role_arn:
            return None
        operation = "delete"
        template, parameters = stack.template_dict, _as_parameters(stack.parameters)
        change_set = None
    documents = principal.documents()
    resources = template.get("Resources") or {}
    for logical_id, context in _resource_contexts(stack, template, parameters, operation, principal.account, name.region):
        decision = evaluate(documents, context.action, context.resource, context)
        _record(principal, context.action, context.resource, decision)
        if decision == "allow":
            continue
        message = denial_message(principal, context.action, context.resource, decision)
        LOG.info("iam: cloudformation for %s: %s", stack.name, message)
        _fail_stack(stack, logical_id, resources[logical_id]["Type"], operation, message)
        if change_set is not None:
            change_set.execution_status = "EXECUTE_FAILED"
        return _accepted(name.call, start_response)
    return None


# --------------------------------------------------------------------------
# Who may invoke a function
# --------------------------------------------------------------------------

SECRETS_MANAGER_PRINCIPAL = "secretsmanager.amazonaws.com"


def _invoke_condition_holds(operator, key, wanted, secret_arn, account):
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
            if not _invoke_condition_holds(operator, key, wanted, secret_arn, account):
                return False
    return True


def secrets_manager_may_invoke(fn, secret_arn, account):
    """Whether `fn`'s resource-based policy lets Secrets Manager invoke it for this secret."""
    return any(_grants_secrets_manager(s, secret_arn, account) for s in fn.policy.statements)
