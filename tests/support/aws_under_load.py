"""What AWS does under load, in front of the emulator.

moto answers every call at once and never fails one. Real AWS throttles each
account at published per-API rates, sometimes answers 500 or 503, drops
connections before or after doing the work, and refuses a Lambda resource
policy past 20 KB. `AwsUnderLoad` is a WSGI middleware that adds those
behaviours in front of moto and the Serverless Application Repository
stand-in, so that tests can see how the provider and the AWS SDK cope:

- every signed request is named (service, call), whatever its protocol;
- fault rules, set over HTTP, answer a share of the requests to one call with
  a throttle, a 500 or a 503 in that service's own wire shape, or reset the
  TCP connection before or after the call takes effect;
- token buckets enforce AWS's published request rates per account, Region
  and API class (on by default, at AWS's real rates; `--quota-scale` scales
  them);
- Lambda's AddPermission is refused with `PolicyLengthExceededException` when
  the resulting policy would pass 20,480 bytes;
- Secrets Manager's ListSecrets can lag, as AWS documents it may ("might not
  reflect changes from the last five minutes"): with a lag set, an answer is
  kept and given again to the same request until it is that old (off by
  default).

Control endpoints on the same port (never faulted, never throttled):

    POST   /_rdsrot/faults  {"seed": 7, "rules": [{"service": "lambda", "call": "AddPermission",
                             "fault": "throttle", "share": 0.15, "skip": 0, "times": null}]}
    DELETE /_rdsrot/faults  removes the rules (the counts stay readable)
    GET    /_rdsrot/faults  the rules and, per "service:call", requests seen and faults injected
    POST   /_rdsrot/quotas  {"scale": 0.1}  (0 turns quotas off)
    GET    /_rdsrot/quotas  the scale and, per API class, the rate and the requests admitted and throttled
    POST   /_rdsrot/consistency  {"list_secrets_lag_seconds": 300}  (0 turns the lag off and forgets the answers kept)
    GET    /_rdsrot/consistency  the lag and how many ListSecrets answers were given again
    GET    /_rdsrot/requests[?after=N]  the signed requests in the order they arrived (those numbered past N),
                             each with what it was answered
"""

import collections
import copy
import io
import json
import logging
import os
import random
import re
import socket
import struct
import threading
import time
import uuid
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

from moto.moto_server.werkzeug_app import MotoRequestHandler

LOG = logging.getLogger("rdsrot-emulator.under-load")

CONTROL_PREFIX = "/_rdsrot/"

FAULT_KINDS = ("throttle", "server_error", "unavailable", "reset_before", "reset_after")

# Lambda: "The final policy size (N) is bigger than the limit (20480)."
LAMBDA_POLICY_LIMIT_BYTES = 20480

_SIGNING_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_API_VERSION_PREFIX = re.compile(r"^/\d{4}-\d{2}-\d{2}(?=/)")

# The environ key under which `ConnectionResettingRequestHandler` offers its
# reset: werkzeug's own socket alone is not enough, because only the request
# handler can stop werkzeug from reading a next request off a dead socket.
_RESET_CONNECTION = "rdsrot.reset_connection"


# --------------------------------------------------------------------------
# Naming requests
# --------------------------------------------------------------------------


class RequestName:
    """Who called what: enough to pick a fault rule, a quota and a wire shape."""

    __slots__ = ("service", "call", "protocol", "region", "access_key")

    def __init__(self, service, call, protocol, region, access_key):
        self.service = service
        self.call = call
        self.protocol = protocol
        self.region = region
        self.access_key = access_key

    @property
    def key(self):
        return f"{self.service}:{self.call}"


def _raw_path(environ):
    """The request path as sent, still percent-encoded.

    PATH_INFO is decoded, so an application ARN (which holds a `/`) in a
    Serverless Application Repository path would look like two segments.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0]
    return environ.get("PATH_INFO", "")


def _query(environ):
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def _take_body(environ):
    """Reads the request body and puts an equal, fresh stream back for moto."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    # The body is now a plain, sized stream: a chunked framing no longer applies.
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return body


def _route(method, segments, routes):
    for route_method, pattern, call in routes:
        if route_method == method and len(pattern) == len(segments):
            if all(p == "*" or p == s for p, s in zip(pattern, segments)):
                return call
    return None


def _family(method, segments):
    """An unknown REST call, named by its method and path with the names blanked."""
    shown = [s if i % 2 == 0 else "*" for i, s in enumerate(segments)]
    return f"{method} /{'/'.join(shown)}"


def _split(path):
    return [s for s in path.split("/") if s]


# Lambda's REST API, as the AWS SDK for Rust (aws-sdk-lambda 1.x) and moto
# 5.2.5 (`moto/awslambda/urls.py`) spell it. The API version prefix
# (`/2015-03-31`, `/2017-03-31` for tags, `/2019-09-25` for event-invoke
# configs, ...) differs per call and is stripped first, so a route is the
# method plus the path below the version; `*` stands for a name.
_LAMBDA_ROUTES = [
    ("GET", ("functions",), "ListFunctions"),
    ("POST", ("functions",), "CreateFunction"),
    ("GET", ("functions", "*"), "GetFunction"),
    ("DELETE", ("functions", "*"), "DeleteFunction"),
    ("GET", ("functions", "*", "configuration"), "GetFunctionConfiguration"),
    ("PUT", ("functions", "*", "configuration"), "UpdateFunctionConfiguration"),
    ("PUT", ("functions", "*", "code"), "UpdateFunctionCode"),
    ("GET", ("functions", "*", "policy"), "GetPolicy"),
    ("POST", ("functions", "*", "policy"), "AddPermission"),
    ("DELETE", ("functions", "*", "policy", "*"), "RemovePermission"),
    ("POST", ("functions", "*", "invocations"), "Invoke"),
    ("POST", ("functions", "*", "invoke-async"), "InvokeAsync"),
    ("POST", ("functions", "*", "response-streaming-invocations"), "InvokeWithResponseStream"),
    ("GET", ("functions", "*", "versions"), "ListVersionsByFunction"),
    ("POST", ("functions", "*", "versions"), "PublishVersion"),
    ("GET", ("functions", "*", "aliases"), "ListAliases"),
    ("POST", ("functions", "*", "aliases"), "CreateAlias"),
    ("GET", ("functions", "*", "aliases", "*"), "GetAlias"),
    ("PUT", ("functions", "*", "aliases", "*"), "UpdateAlias"),
    ("DELETE", ("functions", "*", "aliases", "*"), "DeleteAlias"),
    ("GET", ("functions", "*", "concurrency"), "GetFunctionConcurrency"),
    ("PUT", ("functions", "*", "concurrency"), "PutFunctionConcurrency"),
    ("DELETE", ("functions", "*", "concurrency"), "DeleteFunctionConcurrency"),
    ("GET", ("functions", "*", "url"), "GetFunctionUrlConfig"),
    ("POST", ("functions", "*", "url"), "CreateFunctionUrlConfig"),
    ("PUT", ("functions", "*", "url"), "UpdateFunctionUrlConfig"),
    ("DELETE", ("functions", "*", "url"), "DeleteFunctionUrlConfig"),
    ("GET", ("functions", "*", "urls"), "ListFunctionUrlConfigs"),
    ("GET", ("functions", "*", "event-invoke-config"), "GetFunctionEventInvokeConfig"),
    ("PUT", ("functions", "*", "event-invoke-config"), "PutFunctionEventInvokeConfig"),
    ("POST", ("functions", "*", "event-invoke-config"), "UpdateFunctionEventInvokeConfig"),
    ("DELETE", ("functions", "*", "event-invoke-config"), "DeleteFunctionEventInvokeConfig"),
    ("GET", ("functions", "*", "event-invoke-config", "list"), "ListFunctionEventInvokeConfigs"),
    ("PUT", ("functions", "*", "provisioned-concurrency"), "PutProvisionedConcurrencyConfig"),
    ("DELETE", ("functions", "*", "provisioned-concurrency"), "DeleteProvisionedConcurrencyConfig"),
    ("GET", ("functions", "*", "code-signing-config"), "GetFunctionCodeSigningConfig"),
    ("PUT", ("functions", "*", "code-signing-config"), "PutFunctionCodeSigningConfig"),
    ("DELETE", ("functions", "*", "code-signing-config"), "DeleteFunctionCodeSigningConfig"),
    ("GET", ("functions", "*", "runtime-management-config"), "GetRuntimeManagementConfig"),
    ("PUT", ("functions", "*", "runtime-management-config"), "PutRuntimeManagementConfig"),
    ("GET", ("functions", "*", "recursion-config"), "GetFunctionRecursionConfig"),
    ("PUT", ("functions", "*", "recursion-config"), "PutFunctionRecursionConfig"),
    ("GET", ("tags", "*"), "ListTags"),
    ("POST", ("tags", "*"), "TagResource"),
    ("DELETE", ("tags", "*"), "UntagResource"),
    ("GET", ("event-source-mappings",), "ListEventSourceMappings"),
    ("POST", ("event-source-mappings",), "CreateEventSourceMapping"),
    ("GET", ("event-source-mappings", "*"), "GetEventSourceMapping"),
    ("PUT", ("event-source-mappings", "*"), "UpdateEventSourceMapping"),
    ("DELETE", ("event-source-mappings", "*"), "DeleteEventSourceMapping"),
    ("GET", ("account-settings",), "GetAccountSettings"),
    ("GET", ("layers", "*", "versions"), "ListLayerVersions"),
    ("POST", ("layers", "*", "versions"), "PublishLayerVersion"),
    ("GET", ("layers", "*", "versions", "*"), "GetLayerVersion"),
    ("DELETE", ("layers", "*", "versions", "*"), "DeleteLayerVersion"),
    ("GET", ("layers", "*", "versions", "*", "policy"), "GetLayerVersionPolicy"),
    ("POST", ("layers", "*", "versions", "*", "policy"), "AddLayerVersionPermission"),
    ("DELETE", ("layers", "*", "versions", "*", "policy", "*"), "RemoveLayerVersionPermission"),
    ("GET", ("code-signing-configs",), "ListCodeSigningConfigs"),
    ("POST", ("code-signing-configs",), "CreateCodeSigningConfig"),
    ("GET", ("code-signing-configs", "*"), "GetCodeSigningConfig"),
    ("PUT", ("code-signing-configs", "*"), "UpdateCodeSigningConfig"),
    ("DELETE", ("code-signing-configs", "*"), "DeleteCodeSigningConfig"),
    ("GET", ("code-signing-configs", "*", "functions"), "ListFunctionsByCodeSigningConfig"),
]


def _lambda_call(method, path, query):
    segments = _split(_API_VERSION_PREFIX.sub("", path))
    call = _route(method, segments, _LAMBDA_ROUTES)
    if call:
        return call
    # Two calls share a path and differ only by their query.
    if method == "GET" and segments[:1] == ["layers"] and len(segments) == 1:
        return "GetLayerVersionByArn" if "find" in query else "ListLayers"
    if method == "GET" and len(segments) == 3 and segments[::2] == ["functions", "provisioned-concurrency"]:
        return "ListProvisionedConcurrencyConfigs" if "List" in query else "GetProvisionedConcurrencyConfig"
    return _family(method, segments)


# The Serverless Application Repository's REST API. The application id is an
# ARN sent percent-encoded as one path segment.
_REPOSITORY_ROUTES = [
    ("GET", ("applications",), "ListApplications"),
    ("POST", ("applications",), "CreateApplication"),
    ("GET", ("applications", "*"), "GetApplication"),
    ("PATCH", ("applications", "*"), "UpdateApplication"),
    ("DELETE", ("applications", "*"), "DeleteApplication"),
    ("POST", ("applications", "*", "changesets"), "CreateCloudFormationChangeSet"),
    ("GET", ("applications", "*", "versions"), "ListApplicationVersions"),
    ("PUT", ("applications", "*", "versions", "*"), "CreateApplicationVersion"),
    ("GET", ("applications", "*", "policy"), "GetApplicationPolicy"),
    ("PUT", ("applications", "*", "policy"), "PutApplicationPolicy"),
    ("GET", ("applications", "*", "dependencies"), "ListApplicationDependencies"),
    ("POST", ("applications", "*", "templates"), "CreateCloudFormationTemplate"),
    ("GET", ("applications", "*", "templates", "*"), "GetCloudFormationTemplate"),
    ("POST", ("applications", "*", "unshare"), "UnshareApplication"),
]


def _repository_call(method, path):
    segments = _split(path)
    return _route(method, segments, _REPOSITORY_ROUTES) or _family(method, segments)


# Services that speak the awsQuery protocol (form-encoded `Action=...`).
_QUERY_SERVICES = {"iam", "cloudformation", "sts"}


def name_request(environ):
    """The (service, call) of a signed AWS request; None for anything else
    (moto's own `/moto-api/`, a browser, the control endpoints)."""
    match = _SIGNING_CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return None
    access_key, region, service = match.groups()
    method = environ.get("REQUEST_METHOD", "GET")
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return RequestName(service, target.rsplit(".", 1)[-1], "json", region, access_key)
    content_type = environ.get("CONTENT_TYPE", "")
    if service in _QUERY_SERVICES or content_type.startswith("application/x-www-form-urlencoded"):
        action = _query(environ).get("Action")
        if not action and method == "POST":
            action = parse_qs(_take_body(environ).decode("utf-8", "replace")).get("Action")
        call = action[0] if action else f"{method} {_raw_path(environ)}"
        return RequestName(service, call, "query", region, access_key)
    path = _raw_path(environ)
    if service == "lambda":
        call = _lambda_call(method, path, _query(environ))
    elif service == "serverlessrepo":
        call = _repository_call(method, path)
    else:
        call = _family(method, _split(path))
    return RequestName(service, call, "rest-json", region, access_key)


# --------------------------------------------------------------------------
# Error answers in each service's wire shape
# --------------------------------------------------------------------------

# awsQuery error documents carry the service's XML namespace.
_QUERY_NAMESPACES = {
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "cloudformation": "http://cloudformation.amazonaws.com/doc/2010-05-15/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
}

# (HTTP status, error code, message) per service and kind. The codes are the
# ones each service's model declares where it declares one (Secrets Manager
# `InternalServiceError`, Lambda `ServiceException` and
# `TooManyRequestsException`, IAM `ServiceFailure`, the repository's
# `InternalServerErrorException` and `TooManyRequestsException`), else AWS's
# common errors (`Throttling`, `InternalFailure`, `ServiceUnavailable`). The
# SDK's retry classifier treats `ThrottlingException`, `Throttling` and
# `TooManyRequestsException` as throttling and any 500 or 503 as transient,
# as it does for the real services.
_ANSWERS = {
    "secretsmanager": {
        "throttle": (400, "ThrottlingException", "Rate exceeded"),
        "server_error": (500, "InternalServiceError", "An error occurred on the server side."),
        "unavailable": (503, "ServiceUnavailable", "The service is unavailable. Try again later."),
    },
    "lambda": {
        "throttle": (429, "TooManyRequestsException", "Rate exceeded"),
        "server_error": (500, "ServiceException", "The AWS Lambda service encountered an internal error."),
        "unavailable": (503, "ServiceUnavailableException", "Service Unavailable"),
    },
    "serverlessrepo": {
        "throttle": (429, "TooManyRequestsException", "Too Many Requests"),
        "server_error": (500, "InternalServerErrorException", "Internal Server Error"),
        "unavailable": (503, "ServiceUnavailableException", "Service Unavailable"),
    },
    "iam": {
        "throttle": (400, "Throttling", "Rate exceeded"),
        "server_error": (500, "ServiceFailure", "Service failure."),
        "unavailable": (503, "ServiceUnavailable", "Service is unable to handle request."),
    },
}
_COMMON_ANSWERS = {
    "query": {
        "throttle": (400, "Throttling", "Rate exceeded"),
        "server_error": (500, "InternalFailure", "We encountered an internal error. Please try again."),
        "unavailable": (503, "ServiceUnavailable", "Service is unable to handle request."),
    },
    "json": {
        "throttle": (400, "ThrottlingException", "Rate exceeded"),
        "server_error": (500, "InternalFailure", "We encountered an internal error. Please try again."),
        "unavailable": (503, "ServiceUnavailable", "The service is unavailable. Try again later."),
    },
    "rest-json": {
        "throttle": (429, "TooManyRequestsException", "Too Many Requests"),
        "server_error": (500, "InternalFailure", "We encountered an internal error. Please try again."),
        "unavailable": (503, "ServiceUnavailableException", "Service Unavailable"),
    },
}

# Lambda's throttles carry the retry delay in `Retry-After` (its model binds
# `retryAfterSeconds` to that header) and the reason in the body.
_LAMBDA_RETRY_AFTER_SECONDS = "1"


def _status_line(status):
    return f"{status} {HTTPStatus(status).phrase}"


def fault_answer(name, kind):
    """(status line, headers, body) of the fault `kind` for `name`'s service."""
    answers = _ANSWERS.get(name.service) or _COMMON_ANSWERS[name.protocol]
    return error_answer(name, *answers[kind])


def error_answer(name, status, code, message):
    """(status line, headers, body) of an AWS error in `name`'s wire shape.

    Each protocol puts the code where the AWS SDKs read it: awsJson1.1 in the
    body's `__type`, restJson1 in the `x-amzn-ErrorType` header (and Lambda's
    `Type`/`message` body, the repository's `errorCode`/`message`), awsQuery
    in `<ErrorResponse><Error><Code>`.
    """
    request_id = str(uuid.uuid4())
    if name.protocol == "query":
        namespace = _QUERY_NAMESPACES.get(name.service, "")
        side = "Sender" if status < 500 else "Receiver"
        body = (
            f'<ErrorResponse xmlns="{namespace}">'
            f"<Error><Type>{side}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
        return _status_line(status), headers, body.encode()
    if name.protocol == "json":
        document = {"__type": code, "message": message}
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
        return _status_line(status), headers, json.dumps(document).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", request_id),
    ]
    if name.service == "lambda":
        document = {"Type": "User" if status < 500 else "Service", "message": message}
        if code == "TooManyRequestsException":
            document["Reason"] = "CallerRateLimitExceeded"
            headers.append(("Retry-After", _LAMBDA_RETRY_AFTER_SECONDS))
    elif name.service == "serverlessrepo":
        document = {"errorCode": code, "message": message}
    else:
        document = {"message": message}
    return _status_line(status), headers, json.dumps(document).encode()


# --------------------------------------------------------------------------
# Fault rules
# --------------------------------------------------------------------------


class RuleError(ValueError):
    pass


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class FaultRule:
    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise RuleError(f"a rule is a JSON object, not {spec!r}")
        unknown = set(spec) - {"service", "call", "fault", "share", "skip", "times"}
        if unknown:
            raise RuleError(f"unknown rule fields: {', '.join(sorted(unknown))}")
        self.service = spec.get("service", "*")
        self.call = spec.get("call", "*")
        self.fault = spec.get("fault")
        self.share = spec.get("share", 1.0)
        self.skip = spec.get("skip", 0)
        self.times = spec.get("times")
        if self.fault not in FAULT_KINDS:
            raise RuleError(f"fault must be one of {', '.join(FAULT_KINDS)}, not {self.fault!r}")
        if not isinstance(self.service, str) or not isinstance(self.call, str):
            raise RuleError("service and call are strings (or \"*\")")
        if isinstance(self.share, bool) or not isinstance(self.share, (int, float)) or not 0 <= self.share <= 1:
            raise RuleError(f"share is a probability between 0 and 1, not {self.share!r}")
        if not _is_count(self.skip):
            raise RuleError(f"skip is a count of requests, not {self.skip!r}")
        if self.times is not None and not _is_count(self.times):
            raise RuleError(f"times is a count of faults or null, not {self.times!r}")
        self.matched = 0
        self.injected = 0

    def matches(self, name):
        if self.times is not None and self.injected >= self.times:
            return False  # used up: later rules get their turn
        return self.service in ("*", name.service) and self.call in ("*", name.call)

    def describe(self):
        return {
            "service": self.service,
            "call": self.call,
            "fault": self.fault,
            "share": self.share,
            "skip": self.skip,
            "times": self.times,
            "matched": self.matched,
            "injected": self.injected,
        }


def spared_by_faults(access_key):
    """Whether fault rules leave requests signed with this key alone. The
    emulator spares the rotation functions' own calls: the rules model AWS
    misbehaving towards the provider, and a function that loses an answer
    between setSecret and finishSecret leaves the database's new password
    only in a version later rotations do not read, a hazard of single-user
    rotation itself that no provider can undo."""
    return False


class FaultPlan:
    """The rules in force, the random draws that apply them, and the counts.

    One `random.Random(seed)` per plan, drawn once per request a rule decides
    (past its `skip`), so a run with the same seed and the same request order
    faults the same requests.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._seed = 0
        self._random = random.Random(0)
        self._rules = []
        self._calls = {}

    def replace(self, seed, rules):
        with self._lock:
            self._seed = seed
            self._random = random.Random(seed)
            self._rules = rules
            self._calls = {}

    def clear(self):
        with self._lock:
            self._rules = []

    def decide(self, name):
        """The fault kind to inflict on this request, or None."""
        with self._lock:
            counts = self._calls.setdefault(name.key, {"seen": 0, "faults": {}})
            counts["seen"] += 1
            rule = next((r for r in self._rules if r.matches(name)), None)
            if rule is None:
                return None
            rule.matched += 1
            if rule.matched <= rule.skip:
                return None
            if self._random.random() >= rule.share:
                return None
            rule.injected += 1
            counts["faults"][rule.fault] = counts["faults"].get(rule.fault, 0) + 1
            return rule.fault

    def report(self):
        with self._lock:
            return {
                "seed": self._seed,
                "rules": [r.describe() for r in self._rules],
                "calls": copy.deepcopy(self._calls),
            }


class RequestLog:
    """Every signed request in the order it reached this layer, numbered from
    1, with what it was answered: for tests that must show when a caller
    stopped calling, which counts alone cannot (a count read at a moment
    does not say whether a request arrived before or after it).

    `answer` is `null` while the request is being handled, then the fault
    that answered it (`throttle`, `server_error`, `unavailable`,
    `reset_before`), `quota` for an empty bucket, or the status moto gave
    (`reset_after` when that answer was then dropped). `function` marks the
    calls a rotation function made with its role's credentials. `at` is
    when the request arrived and `took` how long its answer took, in seconds
    (from the layer's start): where the time of a run goes.
    """

    KEEP = 50000

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = collections.deque(maxlen=self.KEEP)
        self._last = 0
        self._start = time.monotonic()

    def arrived(self, name, function):
        with self._lock:
            self._last += 1
            entry = {
                "n": self._last,
                "call": name.key,
                "function": function,
                "answer": None,
                "at": round(time.monotonic() - self._start, 4),
            }
            self._entries.append(entry)
            return entry

    def answered(self, entry, answer):
        with self._lock:
            entry["answer"] = answer
            entry["took"] = round(time.monotonic() - self._start - entry["at"], 4)

    def report(self, after=0):
        with self._lock:
            return {
                "last": self._last,
                "requests": [dict(e) for e in self._entries if e["n"] > after],
            }


# --------------------------------------------------------------------------
# Quotas
# --------------------------------------------------------------------------

# Request rates per account and Region, per API class: (service, class,
# calls, requests per second). A call in no class of its service is not
# limited. Sources: AWS's "Lambda quotas" and "AWS Secrets Manager quotas"
# pages (docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html);
# rows marked (page) are the less used Secrets Manager calls of that page;
# rows marked (page, re-check) are figures that could not be confirmed
# against it when this table was written.
# CloudWatch Logs' FilterLogEvents: 5 transactions per second per account and
# Region, a hard limit (AWS knowledge center, "How do I determine throttling
# in my CloudWatch logs?"); the provider reads it to explain a rotation.
# IAM, STS, CloudFormation and the Serverless Application Repository publish
# no request rates, so they get no bucket here (their throttle shape can
# still be injected as a fault).
_EVERY_OTHER_CALL = None
_LAMBDA_DATA_PLANE = {"Invoke", "InvokeAsync", "InvokeWithResponseStream"}
QUOTA_TABLE = [
    ("lambda", "GetFunction", {"GetFunction"}, 100),
    ("lambda", "GetPolicy", {"GetPolicy"}, 15),
    # "every other control-plane call together": invocations are the data
    # plane, limited by concurrency instead.
    ("lambda", "other control-plane calls", _EVERY_OTHER_CALL, 15),
    ("secretsmanager", "DescribeSecret", {"DescribeSecret"}, 40000),
    ("secretsmanager", "GetSecretValue", {"GetSecretValue"}, 10000),
    ("secretsmanager", "RotateSecret+CancelRotateSecret", {"RotateSecret", "CancelRotateSecret"}, 50),
    (
        "secretsmanager",
        "PutSecretValue+UpdateSecret+UpdateSecretVersionStage+replication",
        {
            "PutSecretValue",
            "UpdateSecret",
            "UpdateSecretVersionStage",
            "RemoveRegionsFromReplication",
            "ReplicateSecretToRegion",
            "StopReplicationToReplica",
        },
        50,
    ),
    ("secretsmanager", "ListSecrets", {"ListSecrets"}, 100),
    (
        "secretsmanager",
        "resource-policy calls",
        {"DeleteResourcePolicy", "GetResourcePolicy", "PutResourcePolicy", "ValidateResourcePolicy"},
        50,
    ),
    ("secretsmanager", "RestoreSecret", {"RestoreSecret"}, 50),  # (page)
    ("secretsmanager", "TagResource+UntagResource", {"TagResource", "UntagResource"}, 50),  # (page)
    ("secretsmanager", "BatchGetSecretValue", {"BatchGetSecretValue"}, 100),  # (page)
    ("secretsmanager", "CreateSecret", {"CreateSecret"}, 50),  # (page, re-check)
    ("secretsmanager", "DeleteSecret", {"DeleteSecret"}, 50),  # (page, re-check)
    ("secretsmanager", "ListSecretVersionIds", {"ListSecretVersionIds"}, 50),  # (page, re-check)
    ("secretsmanager", "GetRandomPassword", {"GetRandomPassword"}, 50),  # (page, re-check)
    ("logs", "FilterLogEvents", {"FilterLogEvents"}, 5),
]


def quota_class(name):
    """(class key, rate) of the bucket that limits this call, or None."""
    for service, label, calls, rate in QUOTA_TABLE:
        if service != name.service:
            continue
        if calls is _EVERY_OTHER_CALL:
            # Listed after the service's own classes, so reached only by the rest.
            if service == "lambda" and name.call in _LAMBDA_DATA_PLANE:
                return None
            return f"{service}:{label}", rate
        if name.call in calls:
            return f"{service}:{label}", rate
    return None


class TokenBucket:
    """`rate` tokens a second, holding at most one second's worth (AWS's
    burst), and never less than one token so that a scaled-down rate below
    1/s still admits a request now and then."""

    def __init__(self, rate, now):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now):
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Quotas:
    def __init__(self, scale):
        self._lock = threading.Lock()
        self._scale = scale
        self._buckets = {}
        self._counts = {}

    def set_scale(self, scale):
        """A new scale starts every bucket full and the counts at zero."""
        with self._lock:
            self._scale = scale
            self._buckets = {}
            self._counts = {}

    def admit(self, name, account):
        found = quota_class(name)
        if found is None or self._scale <= 0:
            return True
        key, rate = found
        with self._lock:
            now = time.monotonic()
            bucket_key = (account, name.region, key)
            bucket = self._buckets.get(bucket_key)
            if bucket is None:
                bucket = self._buckets[bucket_key] = TokenBucket(rate * self._scale, now)
            admitted = bucket.take(now)
            counts = self._counts.setdefault(key, {"admitted": 0, "throttled": 0})
            counts["admitted" if admitted else "throttled"] += 1
            return admitted

    def report(self):
        with self._lock:
            classes = {}
            for service, label, _, rate in QUOTA_TABLE:
                key = f"{service}:{label}"
                counts = self._counts.get(key, {"admitted": 0, "throttled": 0})
                classes[key] = {"rate": rate, "scaled_rate": rate * self._scale, **counts}
            return {"scale": self._scale, "enabled": self._scale > 0, "classes": classes}


def _account_of(access_key):
    # moto's own mapping from access key to account, so that quotas are per
    # account exactly where moto keeps resources per account.
    from moto.iam.models import get_account_id_from

    return get_account_id_from(access_key)


# --------------------------------------------------------------------------
# Connection resets
# --------------------------------------------------------------------------


class ConnectionResettingRequestHandler(MotoRequestHandler):
    """moto's request handler, able to reset the connection of its request."""

    def make_environ(self):
        environ = super().make_environ()
        environ[_RESET_CONNECTION] = self._reset_connection
        return environ

    def _reset_connection(self):
        # No next request on this connection: werkzeug would otherwise wait
        # for one on the dead socket (HTTP/1.1 keeps connections alive).
        self.close_connection = True
        _reset(self.connection)


def _reset(connection):
    """Sends a TCP RST now and leaves `connection` unusable but harmless.

    SO_LINGER with a zero timeout turns close() into a reset. The descriptor
    is detached from the socket object before it is closed, so that what the
    server does with the object afterwards (flush, shutdown, close) fails in
    Python instead of touching a descriptor number another thread may have
    been given by then.
    """
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    os.close(connection.detach())


class _ConnectionReset(ConnectionResetError):
    """Raised to werkzeug after a reset: it takes a ConnectionError for a
    client that went away, and neither answers nor logs a traceback."""


def _reset_request(environ):
    reset = environ.get(_RESET_CONNECTION)
    if reset is not None:
        reset()
    else:
        _reset(environ["werkzeug.socket"])
    raise _ConnectionReset("connection reset by the emulator's fault rules")


# --------------------------------------------------------------------------
# Lambda's 20 KB resource-policy limit
# --------------------------------------------------------------------------


def _lambda_function(name, account, path, query):
    # The backend moto's own Lambda responses use (the simple, Docker-free
    # one in this emulator).
    from moto.awslambda.utils import get_backend

    segments = _split(_API_VERSION_PREFIX.sub("", path))
    function_name = unquote(segments[1])
    qualifier = (query.get("Qualifier") or [None])[0]
    try:
        return get_backend(account, name.region).get_function(function_name, qualifier)
    except Exception:  # moto answers the missing function itself
        return None


def policy_size(statements):
    """The policy's size as AWS counts it: the UTF-8 length of the compact
    JSON document GetPolicy returns (`{"Version":"2012-10-17","Id":"default",
    "Statement":[...]}`), without moto's spaces after `:` and `,`."""
    document = {"Version": "2012-10-17", "Id": "default", "Statement": statements}
    return len(json.dumps(document, separators=(",", ":")).encode("utf-8"))


# --------------------------------------------------------------------------
# The middleware
# --------------------------------------------------------------------------


def _json_answer(start_response, status, document):
    body = json.dumps(document).encode()
    start_response(_status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class _Captured:
    """An application's whole answer, held back until the layer decides."""

    def __init__(self):
        self.status = None
        self.headers = None
        self.chunks = []

    def start_response(self, status, headers, exc_info=None):
        self.status = status
        self.headers = list(headers)
        return self.chunks.append

    @property
    def status_code(self):
        return int(self.status.split(" ", 1)[0])


class LaggingList:
    """ListSecrets answers as of up to `lag` seconds ago.

    The first answer to a request (same account, Region and body, so the same
    page) is kept; the same request gets that answer again until it is `lag`
    seconds old. A secret turned off, on or created meanwhile shows in the
    list as it was, while DescribeSecret, forwarded as always, is current.
    """

    def __init__(self):
        self.lag = 0.0
        self.replayed = 0
        self._kept = {}
        self._lock = threading.Lock()

    def set_lag(self, seconds):
        with self._lock:
            self.lag = seconds
            self._kept.clear()
            self.replayed = 0

    def applies(self, name):
        return self.lag > 0 and name.service == "secretsmanager" and name.call == "ListSecrets"

    def answer(self, environ, name, account, forward):
        key = (account, name.region, _take_body(environ))
        now = time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] < self.lag:
                self.replayed += 1
                return kept[1]
        captured = forward(environ)
        if 200 <= captured.status_code < 300:
            captured.chunks = [b"".join(captured.chunks)]
            with self._lock:
                self._kept[key] = (now, captured)
        return captured

    def report(self):
        with self._lock:
            return {"list_secrets_lag_seconds": self.lag, "list_secrets_replayed": self.replayed}


class AwsUnderLoad:
    """WSGI middleware: control endpoints, faults, quotas, the policy limit,
    a lagging ListSecrets."""

    def __init__(self, app, quota_scale=1.0, controls=None):
        self.app = app
        # More control endpoints, by resource name: handler(method, document)
        # -> (status, answer document); a RuleError becomes a 400.
        self.controls = dict(controls or {})
        self.faults = FaultPlan()
        self.quotas = Quotas(quota_scale)
        self.lists = LaggingList()
        self.requests = RequestLog()
        # AddPermission is measured and rolled back under one lock, so that
        # two grants to the same function cannot interleave with the check.
        self._policy_lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response, path[len(CONTROL_PREFIX) :].strip("/"))
        name = name_request(environ)
        if name is None:
            return self.app(environ, start_response)

        spared = spared_by_faults(name.access_key)
        logged = self.requests.arrived(name, spared)
        fault = None if spared else self.faults.decide(name)
        if fault in ("throttle", "server_error", "unavailable"):
            LOG.info("fault %s on %s", fault, name.key)
            self.requests.answered(logged, fault)
            return self._answer(start_response, fault_answer(name, fault))
        if fault == "reset_before":
            LOG.info("fault reset_before on %s: the call does not happen", name.key)
            self.requests.answered(logged, fault)
            _reset_request(environ)

        account = _account_of(name.access_key)
        if not self.quotas.admit(name, account):
            LOG.info("quota: %s throttled", name.key)
            self.requests.answered(logged, "quota")
            return self._answer(start_response, fault_answer(name, "throttle"))

        if name.service == "lambda" and name.call == "AddPermission":
            captured = self._add_permission(environ, name, account)
        elif self.lists.applies(name):
            captured = self.lists.answer(environ, name, account, self._forward)
        else:
            captured = self._forward(environ)

        if fault == "reset_after":
            LOG.info("fault reset_after on %s: the call happened, its answer is lost", name.key)
            self.requests.answered(logged, "reset_after")
            _reset_request(environ)
        self.requests.answered(logged, str(captured.status_code))
        start_response(captured.status, captured.headers)
        return captured.chunks

    def _forward(self, environ):
        captured = _Captured()
        answer = self.app(environ, captured.start_response)
        try:
            captured.chunks.extend(answer)
        finally:
            if hasattr(answer, "close"):
                answer.close()
        return captured

    @staticmethod
    def _answer(start_response, answer):
        status, headers, body = answer
        start_response(status, headers + [("Content-Length", str(len(body)))])
        return [body]

    def _add_permission(self, environ, name, account):
        path, query = _raw_path(environ), _query(environ)
        with self._policy_lock:
            function = _lambda_function(name, account, path, query)
            if function is None:
                return self._forward(environ)
            policy = function.policy
            statements_before = copy.deepcopy(policy.statements)
            revision_before = policy.revision
            captured = self._forward(environ)
            # AWS answers 201, moto 5.2.5 answers 200.
            if not 200 <= captured.status_code < 300:
                return captured
            size = policy_size(policy.statements)
            if size <= LAMBDA_POLICY_LIMIT_BYTES:
                return captured
            policy.statements = statements_before
            policy.revision = revision_before
        LOG.info("lambda: AddPermission refused, the policy would be %d bytes", size)
        refused = _Captured()
        refused.chunks = self._answer(
            refused.start_response,
            error_answer(
                name,
                400,
                "PolicyLengthExceededException",
                f"The final policy size ({size}) is bigger than the limit ({LAMBDA_POLICY_LIMIT_BYTES}).",
            ),
        )
        return refused

    def _control(self, environ, start_response, resource):
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if resource == "faults" and method == "GET":
                return _json_answer(start_response, 200, self.faults.report())
            if resource == "faults" and method == "DELETE":
                self.faults.clear()
                return _json_answer(start_response, 200, self.faults.report())
            if resource == "faults" and method == "POST":
                request = self._json_body(environ)
                seed = request.get("seed", 0)
                if isinstance(seed, bool) or not isinstance(seed, int):
                    raise RuleError(f"seed is an integer, not {seed!r}")
                rules = request.get("rules", [])
                if not isinstance(rules, list):
                    raise RuleError("rules is a list")
                self.faults.replace(seed, [FaultRule(r) for r in rules])
                LOG.info("fault rules: seed %s, %s", seed, json.dumps(rules))
                return _json_answer(start_response, 200, self.faults.report())
            if resource == "quotas" and method == "GET":
                return _json_answer(start_response, 200, self.quotas.report())
            if resource == "quotas" and method == "POST":
                scale = self._json_body(environ).get("scale")
                if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0:
                    raise RuleError(f"scale is a number >= 0, not {scale!r}")
                self.quotas.set_scale(float(scale))
                LOG.info("quota scale %s", scale)
                return _json_answer(start_response, 200, self.quotas.report())
            if resource == "consistency" and method == "GET":
                return _json_answer(start_response, 200, self.lists.report())
            if resource == "consistency" and method == "POST":
                lag = self._json_body(environ).get("list_secrets_lag_seconds")
                if isinstance(lag, bool) or not isinstance(lag, (int, float)) or lag < 0:
                    raise RuleError(f"list_secrets_lag_seconds is a number >= 0, not {lag!r}")
                self.lists.set_lag(float(lag))
                LOG.info("ListSecrets lag %s s", lag)
                return _json_answer(start_response, 200, self.lists.report())
            if resource == "requests" and method == "GET":
                after = parse_qs(environ.get("QUERY_STRING", "")).get("after", ["0"])[0]
                if not after.isdigit():
                    raise RuleError(f"after is a request number, not {after!r}")
                return _json_answer(start_response, 200, self.requests.report(int(after)))
            if resource in self.controls:
                document = self._json_body(environ) if method == "POST" else {}
                status, answer = self.controls[resource](method, document)
                return _json_answer(start_response, status, answer)
        except RuleError as error:
            return _json_answer(start_response, 400, {"message": str(error)})
        return _json_answer(start_response, 404, {"message": f"no {method} {CONTROL_PREFIX}{resource}"})

    @staticmethod
    def _json_body(environ):
        body = _take_body(environ)
        try:
            document = json.loads(body or b"{}")
        except ValueError as error:
            raise RuleError(f"the body is not JSON: {error}") from error
        if not isinstance(document, dict):
            raise RuleError("the body is a JSON object")
        return document
