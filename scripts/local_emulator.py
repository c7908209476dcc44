"""`make emulator`: the local AWS emulator and real database servers, in the
foreground, to try a configuration by hand.

Starts `tests/support/emulator.py` (moto with the Serverless Application
Repository stand-in, on 127.0.0.1) and `tests/support/databases.py`
(PostgreSQL and MariaDB on 127.0.0.1), then prints ONE line of JSON on stdout:

  {"aws_endpoint_url": "http://127.0.0.1:4566",
   "serverlessrepo_endpoint_url": "http://127.0.0.1:4566",
   "region": "us-east-1", "aws_access_key_id": "testing",
   "aws_secret_access_key": "testing",
   "postgres": {"host": ..., "port": ..., "user": ..., "password": ...},
   "mysql": {...}}

and runs until Ctrl-C, SIGTERM or SIGHUP, then stops everything (the
database directories are removed). Run it with the venv's Python (moto).
"""

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(REPO, "tests", "support", "emulator.py")
DATABASES = os.path.join(REPO, "tests", "support", "databases.py")
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 20
LISTENING_PREFIX = "rdsrot-emulator listening on "


class Stop(Exception):
    """Raised in the main thread by a stop signal, to unwind into cleanup."""


def say(message):
    print(f"local_emulator: {message}", file=sys.stderr, flush=True)


def stop_with_parent():
    """Asks Linux for SIGTERM when our parent dies: `make` killed by a
    signal leaves its recipe running, which would keep the servers up."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        # The parent was gone before we asked.
        raise Stop("parent gone")


class Child:
    """A helper process whose first stdout line says it is ready."""

    def __init__(self, name, command, stderr):
        self.name = name
        self.process = subprocess.Popen(
            command,
            # Both stop themselves when this pipe closes
            # (`--exit-on-stdin-eof`), even if we are killed outright.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            # Their own session: a Ctrl-C reaches us only, and we stop them
            # in order.
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
        )
        self.first_line = None
        self.read = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self):
        self.first_line = self.process.stdout.readline().decode("utf-8", "replace").strip()
        self.read.set()
        # Drained so that it never blocks on a full pipe.
        for _ in self.process.stdout:
            pass

    def wait_first_line(self, deadline):
        while not self.read.wait(0.2):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} printed nothing in {START_TIMEOUT_SECONDS} s")
        if not self.first_line:
            self.process.wait()
            raise RuntimeError(f"{self.name} exited with {self.process.returncode} before it was ready")
        return self.first_line

    def stop(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait()


def wait_emulator_answers(endpoint, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the emulator at {endpoint} never answered /moto-api/")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4566, help="the emulator's port on 127.0.0.1 (0: any free port)")
    parser.add_argument(
        "--quota-scale",
        type=float,
        help="AWS request quotas times this factor (default: AWS's real rates; 0: none)",
    )
    args = parser.parse_args(argv)

    stopping = threading.Event()

    def on_signal(number, _frame):
        stopping.set()
        raise Stop(signal.Signals(number).name)

    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, on_signal)

    children = []
    keep_log = False
    emulator_log = tempfile.NamedTemporaryFile(prefix="rdsrot-emulator-", suffix=".log", delete=False)
    try:
        stop_with_parent()
        emulator_command = [sys.executable, EMULATOR, "--port", str(args.port), "--exit-on-stdin-eof"]
        if args.quota_scale is not None:
            emulator_command += ["--quota-scale", str(args.quota_scale)]
        # Started together: the databases take longest (MariaDB's first start).
        emulator = Child("the emulator", emulator_command, emulator_log)
        children.append(emulator)
        databases = Child("databases.py", [sys.executable, DATABASES, "--exit-on-stdin-eof"], None)
        children.append(databases)

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        line = emulator.wait_first_line(deadline)
        if not line.startswith(LISTENING_PREFIX):
            raise RuntimeError(f"the emulator said {line!r}")
        endpoint = line[len(LISTENING_PREFIX) :]
        wait_emulator_answers(endpoint, deadline)
        servers = json.loads(databases.wait_first_line(deadline))

        print(
            json.dumps(
                {
                    "aws_endpoint_url": endpoint,
                    # The repository stand-in answers on the emulator's port.
                    "serverlessrepo_endpoint_url": endpoint,
                    "region": REGION,
                    "aws_access_key_id": "testing",
                    "aws_secret_access_key": "testing",
                    "postgres": servers["postgres"],
                    "mysql": servers["mysql"],
                }
            ),
            flush=True,
        )
        say(f"ready; the emulator logs to {emulator_log.name}; Ctrl-C stops everything")

        while not stopping.wait(0.5):
            for child in children:
                if child.process.poll() is not None:
                    keep_log = True
                    say(f"{child.name} exited on its own ({child.process.returncode}); stopping")
                    return 1
        return 0
    except Stop as stop:
        say(f"{stop}: stopping")
        return 0
    except (RuntimeError, ValueError, KeyError) as error:
        keep_log = True
        say(f"could not start: {error}; the emulator's log: {emulator_log.name}")
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
        for child in reversed(children):
            child.stop()
        emulator_log.close()
        if not keep_log:
            os.unlink(emulator_log.name)
        if children:
            say("stopped")


if __name__ == "__main__":
    sys.exit(main())
