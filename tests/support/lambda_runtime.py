"""Running a function's Python handler from its deployed code, without Docker.

moto's simple Lambda backend answers every invocation with a canned body.
`install(endpoint)` replaces `LambdaSimpleBackend.invoke`, the one method
both the `Invoke` API and Secrets Manager's rotation reach a function
through, with a run of the function's own code:

- its zip unpacked once per code hash (under a temporary folder removed when
  the emulator exits) and its `Handler` imported from there by
  `lambda_bootstrap.py`, in a child process of the venv's Python started with
  `-S`: the path holds the task root, boto3 and boto3's dependencies, as
  Lambda's Python runtime has, and no moto;
- the network limited to loopback inside that process;
- its environment, Lambda's reserved variables, credentials for its
  execution role from moto's STS, `AWS_ENDPOINT_URL` set to the emulator and
  any `*_ENDPOINT` variable naming an amazonaws.com host pointed there too;
- its `Timeout`, past which the process group is killed;
- its output in moto's CloudWatch Logs (`/aws/lambda/<name>`), with the
  START, END and REPORT lines, errors and timeouts as Lambda writes them.

A worker process is kept warm per function and configuration, as Lambda
keeps an execution environment: the next invocation reuses it, a change of
code or configuration (or a timeout kill) replaces it.
"""

import atexit
import base64
import datetime
import hashlib
import io
import json
import logging
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from importlib.util import find_spec
from urllib.parse import urlparse

import function_iam

LOG = logging.getLogger("rdsrot-emulator.lambda")

BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lambda_bootstrap.py")
# What Lambda's Python runtime puts on a function's path besides its own code.
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "dateutil", "s3transfer", "urllib3", "six")
TAIL_BYTES = 4096
MAX_RUNNING_PER_FUNCTION = 4
MAX_RUNNING_WORKERS = 8
MAX_IDLE_WORKERS = 8
# Role credentials from moto's STS last an hour: a worker is replaced well
# before its keys would expire.
WORKER_LIFETIME_SECONDS = 45 * 60
_TEMP_PREFIX = "rdsrot-lambda-"


class Outcome:
    """One invocation's answer: the body, whether it failed, and its log."""

    def __init__(self, body, failed, log_text):
        self.body = body
        self.failed = failed
        self.log_text = log_text

    @property
    def error(self):
        return json.loads(self.body) if self.failed else None

    def log_tail(self):
        encoded = self.log_text.encode("utf-8")[-TAIL_BYTES:]
        return base64.b64encode(encoded).decode("ascii")


# --------------------------------------------------------------------------
# Files: the runtime's packages and each function's unpacked code
# --------------------------------------------------------------------------


class Files:
    def __init__(self):
        _remove_abandoned_folders()
        self.root = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-")
        self.runtime_lib = os.path.join(self.root, "runtime-lib")
        os.mkdir(self.runtime_lib)
        for package in RUNTIME_PACKAGES:
            spec = find_spec(package)
            source = spec.submodule_search_locations[0] if spec.submodule_search_locations else spec.origin
            os.symlink(source, os.path.join(self.runtime_lib, os.path.basename(source)))
        self._lock = threading.Lock()

    def task_root(self, code_bytes):
        digest = hashlib.sha256(code_bytes).hexdigest()
        folder = os.path.join(self.root, "code", digest)
        with self._lock:
            if not os.path.isdir(folder):
                unpacking = folder + ".unpacking"
                shutil.rmtree(unpacking, ignore_errors=True)
                os.makedirs(unpacking)
                with zipfile.ZipFile(io.BytesIO(code_bytes)) as archive:
                    archive.extractall(unpacking)
                os.rename(unpacking, folder)
        return folder

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


def _remove_abandoned_folders():
    """Folders of emulators that were killed (SIGKILL runs no clean-up)."""
    parent = tempfile.gettempdir()
    for name in os.listdir(parent):
        if not name.startswith(_TEMP_PREFIX):
            continue
        try:
            owner = int(name[len(_TEMP_PREFIX) :].split("-", 1)[0])
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        except (ValueError, PermissionError):
            pass


# --------------------------------------------------------------------------
# CloudWatch Logs
# --------------------------------------------------------------------------

# moto's put_log_events appends to shared lists without a lock.
_LOGS_LOCK = threading.Lock()


def _now_ms():
    return int(time.time() * 1000)


def _iso_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class LogStream:
    """One worker's stream in `/aws/lambda/<function>`, as Lambda names it."""

    def __init__(self, fn):
        from moto.logs.models import logs_backends

        self.backend = logs_backends[fn.account_id][fn.region]
        self.group = f"/aws/lambda/{fn.function_name}"
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
        self.name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self._last_ms = 0

    def _ensure(self):
        if self.group not in self.backend.groups:
            self.backend.create_log_group(self.group, {})
        if self.name not in self.backend.groups[self.group].streams:
            self.backend.create_log_stream(self.group, self.name)

    def put(self, message):
        with _LOGS_LOCK:
            # Events must not go back in time within a stream.
            self._last_ms = max(self._last_ms, _now_ms())
            try:
                self._ensure()
                self.backend.put_log_events(self.group, self.name, [{"timestamp": self._last_ms, "message": message}])
            except Exception:  # the group was deleted meanwhile, say: log here instead
                LOG.exception("lambda: cannot write to %s %s", self.group, self.name)


# --------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------


def configuration_of(fn):
    """What makes two execution environments of a function interchangeable."""
    return json.dumps(
        [
            hashlib.sha256(fn.code_bytes or b"").hexdigest(),
            fn.handler,
            fn.environment_vars,
            fn.timeout,
            fn.memory_size,
            fn.role,
            fn.run_time,
        ],
        sort_keys=True,
        default=str,
    )


def _endpoint_variable(value, endpoint):
    """An `*_ENDPOINT` value naming an AWS host points at the emulator."""
    parsed = urlparse(value if "://" in value else f"https://{value}")
    host = (parsed.hostname or "").lower()
    if host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"):
        return endpoint
    return value


def _role_credentials(fn):
    from moto.utilities.utils import get_partition
    from moto.sts.models import sts_backends

    assumed = sts_backends[fn.account_id][get_partition(fn.region)].assume_role(
        region_name=fn.region,
        role_session_name=fn.function_name,
        role_arn=fn.role,
        policy=None,
        duration=3600,
        external_id=None,
    )
    function_iam.register_function_credentials(
        assumed.access_key_id, fn.role, fn.function_name, assumed.arn, assumed.account_id
    )
    return assumed


class Worker:
    """One execution environment: a warm `lambda_bootstrap.py` process."""

    def __init__(self, runtime, fn, configuration):
        self.configuration = configuration
        self.function_name = fn.function_name
        self.started = time.monotonic()
        self.stream = LogStream(fn)
        task_root = runtime.files.task_root(fn.code_bytes or b"")
        credentials = _role_credentials(fn)
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC"}
        for key, value in (fn.environment_vars or {}).items():
            value = str(value)
            environment[key] = _endpoint_variable(value, runtime.endpoint) if key.endswith("_ENDPOINT") else value
        environment.update(
            {
                "LAMBDA_TASK_ROOT": task_root,
                "_HANDLER": fn.handler or "",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.run_time}",
                "AWS_REGION": fn.region,
                "AWS_DEFAULT_REGION": fn.region,
                "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(fn.timeout),
                "AWS_LAMBDA_LOG_GROUP_NAME": self.stream.group,
                "AWS_LAMBDA_LOG_STREAM_NAME": self.stream.name,
                "AWS_ACCESS_KEY_ID": credentials.access_key_id,
                "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
                "AWS_SESSION_TOKEN": credentials.session_token,
                "AWS_ENDPOINT_URL": runtime.endpoint,
                # Nothing from the emulator's machine: no profile, no
                # instance metadata lookup.
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        reading, writing = os.pipe()
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-S",
                    BOOTSTRAP,
                    "--handler",
                    fn.handler or "",
                    "--channel",
                    str(writing),
                    "--runtime-lib",
                    runtime.files.runtime_lib,
                ],
                cwd=task_root,
                env=environment,
                stdin=subprocess.PIPE,
                stdout=sys.stderr,
                stderr=sys.stderr,
                pass_fds=(writing,),
                start_new_session=True,
            )
        finally:
            os.close(writing)
        self.messages = queue.Queue()
        self._channel = os.fdopen(reading, "r", encoding="utf-8")
        threading.Thread(target=self._read_channel, daemon=True).start()

    def _read_channel(self):
        for line in self._channel:
            try:
                self.messages.put(json.loads(line))
            except ValueError:
                self.messages.put({"log": line.rstrip("\n")})
        self.messages.put(None)

    @property
    def alive(self):
        return self.process.poll() is None

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()

    def _max_memory_mb(self):
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return max(1, int(line.split()[1]) // 1024)
        except OSError:
            pass
        return 0

    def invoke(self, fn, payload, request_id):
        """Runs one invocation; the worker is unusable afterwards when it timed out."""
        lines = []

        def log(message):
            lines.append(message)
            self.stream.put(message)

        started = time.monotonic()
        log(f"START RequestId: {request_id} Version: $LATEST")
        try:
            event = json.loads(payload) if payload else {}
        except ValueError:
            event = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        deadline = time.time() + fn.timeout
        request = {"id": request_id, "event": event, "deadline_ms": int(deadline * 1000), "function_arn": fn.function_arn}
        body, failed, finished, memory_mb = None, False, False, None
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            pass
        while not finished:
            remaining = deadline - time.time()
            try:
                message = self.messages.get(timeout=max(0.0, remaining)) if remaining > 0 else None
                timed_out = remaining <= 0
            except queue.Empty:
                message, timed_out = None, True
            if timed_out:
                memory_mb = self._max_memory_mb()
                self.stop()
                text = f"Task timed out after {fn.timeout:.2f} seconds"
                log(f"{_iso_now()} {request_id} {text}")
                body = {"errorType": "Sandbox.Timedout", "errorMessage": f"RequestId: {request_id} Error: {text}"}
                failed = finished = True
            elif message is None:
                code = self.process.wait()
                text = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
                log(text)
                body = {"errorType": "Runtime.ExitError", "errorMessage": text}
                failed = finished = True
            elif "log" in message:
                log(message["log"])
            elif message.get("done") == request_id:
                failed = "error" in message
                body = message["error"] if failed else message.get("result")
                finished = True
        elapsed_ms = (time.monotonic() - started) * 1000
        log(f"END RequestId: {request_id}")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {elapsed_ms:.2f} ms\t"
            f"Billed Duration: {max(1, math.ceil(elapsed_ms))} ms\tMemory Size: {fn.memory_size} MB\t"
            f"Max Memory Used: {memory_mb or self._max_memory_mb()} MB\t"
        )
        log(report)
        return Outcome(json.dumps(body).encode(), failed, "".join(line + "\n" for line in lines))


class Runtime:
    """The warm workers of every function, within what a 2-core machine bears.

    Lambda runs each concurrent invocation in an environment of its own; here
    at most `MAX_RUNNING_PER_FUNCTION` run at once per function and
    `MAX_RUNNING_WORKERS` in all (the others wait their turn, as if Lambda
    were throttling and the caller retrying), and the `MAX_IDLE_WORKERS` most
    recently used idle workers are kept warm.
    """

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.files = Files()
        self._idle = []  # (function key, worker), least recently used first
        self._lock = threading.Lock()
        self._closed = False
        self._running = threading.BoundedSemaphore(MAX_RUNNING_WORKERS)
        self._running_per_function = {}

    def _slot_of(self, key):
        with self._lock:
            if key not in self._running_per_function:
                self._running_per_function[key] = threading.BoundedSemaphore(MAX_RUNNING_PER_FUNCTION)
            return self._running_per_function[key]

    def _take(self, key, fn):
        configuration = configuration_of(fn)
        worker = None
        with self._lock:
            mine = [w for k, w in self._idle if k == key]
            usable = [w for w in mine if w.configuration == configuration and w.alive]
            if usable:
                worker = usable[-1]
            stale = [w for w in mine if w not in usable]
            self._idle = [(k, w) for k, w in self._idle if w is not worker and w not in stale]
        for each in stale:
            each.stop()
        if worker is not None:
            return worker
        started = time.monotonic()
        worker = Worker(self, fn, configuration)
        LOG.info("lambda: %s started a worker in %.0f ms", fn.function_name, (time.monotonic() - started) * 1000)
        return worker

    def _give_back(self, key, worker):
        evicted = []
        with self._lock:
            reusable = (
                not self._closed and worker.alive and time.monotonic() - worker.started < WORKER_LIFETIME_SECONDS
            )
            if reusable:
                self._idle.append((key, worker))
                while len(self._idle) > MAX_IDLE_WORKERS:
                    evicted.append(self._idle.pop(0)[1])
        if not reusable:
            evicted.append(worker)
        for each in evicted:
            each.stop()

    def invoke(self, fn, payload):
        request_id = str(uuid.uuid4())
        key = (fn.account_id, fn.region, fn.function_name)
        with self._slot_of(key), self._running:
            worker = self._take(key, fn)
            started = time.monotonic()
            try:
                outcome = worker.invoke(fn, payload, request_id)
            finally:
                self._give_back(key, worker)
        LOG.info(
            "lambda: %s %s in %.0f ms%s",
            fn.function_name,
            request_id,
            (time.monotonic() - started) * 1000,
            " (failed)" if outcome.failed else "",
        )
        return outcome

    def close(self):
        with self._lock:
            self._closed = True
            workers = [w for _, w in self._idle]
            self._idle.clear()
        for worker in workers:
            worker.stop()
        self.files.remove()


_RUNTIME = None


def invoke_function(fn, payload):
    """Runs `fn` once on `payload` (bytes or str, JSON) and returns its Outcome."""
    if isinstance(payload, str):
        payload = payload.encode()
    return _RUNTIME.invoke(fn, payload)


def install(endpoint):
    """Makes every invocation in this emulator run the function's code."""
    global _RUNTIME
    from moto.awslambda_simple.models import LambdaSimpleBackend

    _RUNTIME = Runtime(endpoint)
    atexit.register(shutdown)

    def invoke_running_code(self, function_name, qualifier, body, headers, response_headers):
        fn = self.get_function(function_name, qualifier)
        invocation_type = (headers or {}).get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":
            threading.Thread(target=invoke_function, args=(fn, body or b"{}"), daemon=True).start()
            return b""
        outcome = invoke_function(fn, body or b"{}")
        if outcome.failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-log-result"] = outcome.log_tail()
        return outcome.body

    LambdaSimpleBackend.invoke = invoke_running_code


def shutdown():
    """Stops every worker and removes the unpacked code (idempotent)."""
    global _RUNTIME
    runtime, _RUNTIME = _RUNTIME, None
    if runtime is not None:
        runtime.close()
