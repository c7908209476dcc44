"""Runs inside a function's worker process (`python -S`, started by
`lambda_runtime.py`): imports the function's handler and runs invocations,
one at a time, as Lambda's Python runtime does in one execution environment.

It talks to the emulator over two pipes: invocation requests arrive on
stdin, one JSON document a line (`{"id", "event", "deadline_ms", ...}`);
log events and results leave on the file descriptor named by `--channel`,
one JSON document a line (`{"log": TEXT}`, then `{"done": ID, "result": ...}`
or `{"done": ID, "error": {...}}`). What the function prints or logs goes
over the same channel, so the emulator sees its output and its result in the
order they happened, and keeps what was printed before a timeout kill.

Standard output and error themselves stay with the emulator (its log): they
carry only what bypasses `sys.stdout`, such as a crash of this file.

Only standard-library modules are imported here: the function's path holds
the task root and boto3 with its dependencies, nothing else.
"""

import errno
import importlib
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback

# --------------------------------------------------------------------------
# The network: loopback only
# --------------------------------------------------------------------------

# A function given a made-up or remote host must fail at once, without a DNS
# query leaving the machine: names other than localhost do not resolve, and
# connections to other addresses fail as on a network with no route.
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_loopback_address(host):
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_address_literal(host):
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _host_text(host):
    return host.decode("ascii", "replace") if isinstance(host, bytes) else host


def guard_network():
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def unresolvable(host):
        return socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}")

    def getaddrinfo(host, *args, **kwargs):
        text = _host_text(host)
        if text is None or text.lower() in _LOOPBACK_NAMES or _is_address_literal(text):
            return real_getaddrinfo(host, *args, **kwargs)
        raise unresolvable(text)

    def gethostbyname(host):
        text = _host_text(host)
        if text.lower() in _LOOPBACK_NAMES:
            return "127.0.0.1"
        if _is_address_literal(text):
            return text
        raise unresolvable(text)

    def gethostbyname_ex(host):
        return (_host_text(host), [], [gethostbyname(host)])

    def gethostbyaddr(address):
        if _is_loopback_address(_host_text(address)):
            return ("localhost", [], [address])
        raise socket.herror(errno.EHOSTUNREACH, "Unknown host")

    def unreachable(sock, address):
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return None
        host = _host_text(address[0])
        if host.lower() in _LOOPBACK_NAMES or _is_loopback_address(host):
            return None
        if not _is_address_literal(host):
            return unresolvable(host)
        return OSError(errno.ENETUNREACH, f"Network is unreachable: {host}")

    def connect(sock, address):
        refused = unreachable(sock, address)
        if refused is not None:
            raise refused
        return real_connect(sock, address)

    def connect_ex(sock, address):
        refused = unreachable(sock, address)
        if refused is not None:
            return refused.errno or errno.ENETUNREACH
        return real_connect_ex(sock, address)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex


# --------------------------------------------------------------------------
# The channel to the emulator
# --------------------------------------------------------------------------


class Channel:
    def __init__(self, fd):
        self._stream = os.fdopen(fd, "w", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def send(self, document):
        line = json.dumps(document, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class LineLog:
    """`sys.stdout`/`sys.stderr` for the function: each line one log event."""

    def __init__(self, channel):
        self._channel = channel
        self._pending = ""
        self.encoding = "utf-8"
        self.errors = "strict"

    def write(self, text):
        if not isinstance(text, str):
            text = str(text)
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._channel.send({"log": line})
        return len(text)

    def flush(self):
        if self._pending:
            self._channel.send({"log": self._pending})
            self._pending = ""

    def isatty(self):
        return False

    def writable(self):
        return True

    def fileno(self):
        raise OSError(errno.EBADF, "the function's output is not a file")


class Invocation:
    """What the running invocation's log lines are tagged with."""

    request_id = "-"


class LambdaLogHandler(logging.Handler):
    """Lambda's Python runtime: one event per record, multi-line included."""

    def __init__(self, channel):
        super().__init__()
        self._channel = channel

    def emit(self, record):
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            millis = int(record.msecs)
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            message = f"[{record.levelname}]\t{stamp}.{millis:03d}Z\t{Invocation.request_id}\t{text}"
            self._channel.send({"log": message})
        except Exception:
            self.handleError(record)


# --------------------------------------------------------------------------
# Invocations
# --------------------------------------------------------------------------


class Context:
    """The handler's `context` argument (the attributes rotation functions use)."""

    def __init__(self, request, deadline):
        self.aws_request_id = request["id"]
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = request.get("function_arn", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def _frames(trace):
    """The function's frames, without this file's (Lambda shows none of its runtime)."""
    here = os.path.abspath(__file__)
    frames = [frame for frame in traceback.extract_tb(trace) if os.path.abspath(frame.filename) != here]
    return traceback.format_list(frames)


def error_of(error, error_type=None):
    """Lambda's error document and its one log event for an exception."""
    kind = error_type or type(error).__name__
    message = str(error)
    stack = _frames(error.__traceback__)
    event = f"[ERROR] {kind}: {message}\nTraceback (most recent call last):\n" + "".join(stack).rstrip("\n")
    return {"errorMessage": message, "errorType": kind, "stackTrace": stack}, event


def load_handler(spec):
    """The handler function named `module.function`, or Lambda's error for it."""
    module_name, _, function_name = (spec or "").rpartition(".")
    if not module_name:
        message = f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)"
        return None, {"errorMessage": message, "errorType": "Runtime.MalformedHandlerName", "stackTrace": []}
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except Exception as error:  # whatever the package raises while importing
        message = f"Unable to import module '{module_name}': {error}"
        return None, {"errorMessage": message, "errorType": "Runtime.ImportModuleError", "stackTrace": []}
    handler = getattr(module, function_name, None)
    if handler is None:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        return None, {"errorMessage": message, "errorType": "Runtime.HandlerNotFound", "stackTrace": []}
    return handler, None


def serve(channel, handler_spec):
    handler = None
    load_error = None
    loaded = False
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        Invocation.request_id = request["id"]
        if not loaded:
            handler, load_error = load_handler(handler_spec)
            loaded = True
        if load_error is not None:
            channel.send({"log": f"[ERROR] {load_error['errorType']}: {load_error['errorMessage']}"})
            channel.send({"done": request["id"], "error": load_error})
            continue
        deadline = request["deadline_ms"] / 1000.0
        try:
            result = handler(request["event"], Context(request, deadline))
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                answer = {"done": request["id"], "result": json.loads(json.dumps(result))}
            except (TypeError, ValueError) as error:
                message = f"Unable to marshal response: {error}"
                channel.send({"log": f"[ERROR] Runtime.MarshalError: {message}"})
                answer = {
                    "done": request["id"],
                    "error": {"errorMessage": message, "errorType": "Runtime.MarshalError", "stackTrace": []},
                }
        except Exception as error:  # the function's own failure, reported as Lambda does
            sys.stdout.flush()
            sys.stderr.flush()
            document, event = error_of(error)
            channel.send({"log": event})
            answer = {"done": request["id"], "error": document}
        channel.send(answer)


def _exit_when_orphaned(parent):
    # The emulator may be killed outright: a worker must not outlive it, even
    # in the middle of a long invocation.
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


def _argument(name):
    return sys.argv[sys.argv.index(name) + 1]


def main():
    handler_spec = _argument("--handler")
    channel_fd = int(_argument("--channel"))
    # The function sees the task root, boto3 and the standard library: not
    # this file's folder (the emulator's own modules).
    here = os.path.dirname(os.path.abspath(__file__))
    standard_library = [entry for entry in sys.path if entry and os.path.abspath(entry) != here]
    sys.path[:] = [os.environ["LAMBDA_TASK_ROOT"], _argument("--runtime-lib")] + standard_library
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True).start()
    guard_network()
    channel = Channel(channel_fd)
    sys.stdout = LineLog(channel)
    sys.stderr = LineLog(channel)
    root = logging.getLogger()
    root.handlers[:] = [LambdaLogHandler(channel)]
    root.setLevel(logging.INFO)
    os.chdir(os.environ["LAMBDA_TASK_ROOT"])
    serve(channel, handler_spec)


if __name__ == "__main__":
    main()
