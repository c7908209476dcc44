"""Real database servers for the tests: PostgreSQL and MariaDB on 127.0.0.1.

Each server gets a fresh temporary directory (data, Unix socket, log), a
free TCP port on 127.0.0.1 and an admin user with a random password:
- PostgreSQL (the machine's `initdb`/`postgres`): superuser `postgres`,
  scram-sha-256 over TCP from 127.0.0.1 only; no other way in. PostgreSQL
  refuses to run as root, so when we are root it runs as the `postgres`
  system user, which then owns its directory.
- MariaDB (`mariadb-install-db`/`mariadbd`): `root` with a password over TCP.

Once both accept connections (checked with their own command-line clients),
prints ONE line of JSON on stdout:
  {"postgres": {"host": "127.0.0.1", "port": N, "user": "postgres",
                "password": "..."}, "mysql": {...}}
then runs until SIGTERM, SIGINT (Ctrl-C), SIGHUP or, with
`--exit-on-stdin-eof`, until its stdin closes (so a test process that dies
leaves nothing behind). Whatever ends it, both servers are stopped and their
directories removed; a server that fails to start stops the other.
Start times go to stderr.

Only the standard library: it runs with the venv's Python or the system's.
"""

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 15
# A port taken between our probe and the server's bind is retried on another.
START_ATTEMPTS = 3
CLIENT_CONNECT_TIMEOUT_SECONDS = 2
# Tells the Rust tests to skip (or fail under RDSROT_REQUIRE_TOOLS=1).
EXIT_MISSING_TOOLS = 3


class Stop(Exception):
    """Raised in the main thread by a stop signal, to unwind into cleanup."""


class StartFailed(Exception):
    """The server did not come up; another port may do."""


class SetupFailed(StartFailed):
    """Creating the data directory failed: another port would not help."""


def log(message):
    print(f"databases.py: {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def random_password():
    # URL-safe letters only: no quoting trouble in SQL, shells or URLs.
    return secrets.token_urlsafe(24)


def find_postgres_bin():
    """The newest /usr/lib/postgresql/*/bin holding initdb, else PATH's."""
    candidates = []
    root = "/usr/lib/postgresql"
    if os.path.isdir(root):
        for version in os.listdir(root):
            path = os.path.join(root, version, "bin")
            if os.access(os.path.join(path, "initdb"), os.X_OK):
                try:
                    candidates.append((int(version), path))
                except ValueError:
                    continue
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def parent_death_prefix(signal_name, user=None):
    """`setpriv` arguments that send the server `signal_name` if we die
    without cleaning up (SIGKILL), and switch to `user` first when given;
    the signal is set after the switch, which would otherwise clear it."""
    if not shutil.which("setpriv"):
        if user:
            raise RuntimeError("setpriv (util-linux) is needed to run PostgreSQL as a non-root user")
        return []
    prefix = ["setpriv"]
    if user:
        prefix += [f"--reuid={user}", f"--regid={user}", "--init-groups"]
    return prefix + [f"--pdeathsig={signal_name}", "--"]


class Server:
    """One database server in its own directory; subclasses know the engine."""

    engine = ""

    def __init__(self):
        self.directory = None
        self.process = None
        self.port = None
        self.password = random_password()
        self.log_path = None

    def describe(self):
        return {"host": HOST, "port": self.port, "user": self.admin_user, "password": self.password}

    def start(self):
        started = time.monotonic()
        last_error = None
        for _ in range(START_ATTEMPTS):
            self.stop()
            self.directory = tempfile.mkdtemp(prefix=f"rdsrot-{self.engine}-")
            self.log_path = os.path.join(self.directory, "server.log")
            self.port = free_port()
            try:
                self.initialise()
                self.launch()
                self.wait_ready()
                log(f"{self.engine} ready on {HOST}:{self.port} in {time.monotonic() - started:.2f} s")
                return
            except SetupFailed:
                raise
            except StartFailed as error:
                last_error = error
                log(f"{self.engine} did not start on port {self.port}: {error}")
        raise last_error

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StartFailed(f"the server exited with {self.process.returncode}; {self.log_tail()}")
            if self.answers():
                return
            time.sleep(0.1)
        raise StartFailed(f"no answer within {READY_TIMEOUT_SECONDS} s; {self.log_tail()}")

    def log_tail(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as server_log:
                return "its log ends:\n" + "".join(server_log.readlines()[-15:])
        except OSError:
            return "it left no log"

    def run_setup(self, command, **options):
        # Its own process group: mariadb-install-db is a shell pipeline, and
        # a stop in the middle must take all of it down.
        setup = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **options,
        )
        try:
            output, _ = setup.communicate()
        except BaseException:
            os.killpg(setup.pid, signal.SIGKILL)
            setup.wait()
            raise
        if setup.returncode != 0:
            program = command[command.index("--") + 1] if command[0] == "setpriv" else command[0]
            first_lines = "".join(output.splitlines(keepends=True)[:15])
            raise SetupFailed(f"{os.path.basename(program)} failed:\n{first_lines}")

    def spawn(self, command, **options):
        with open(self.log_path, "ab") as server_log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=server_log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the terminal reaches us only,
                # and we decide how the server stops.
                start_new_session=True,
                **options,
            )

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.graceful_signal)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                log(f"{self.engine} ignored {self.graceful_signal.name}; killing it")
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        self.process = None
        self.cleanup()

    def cleanup(self):
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class Postgres(Server):
    engine = "postgres"
    admin_user = "postgres"
    # Fast shutdown: rolls back open sessions instead of waiting for them.
    graceful_signal = signal.SIGINT

    def __init__(self, bin_dir):
        super().__init__()
        self.bin_dir = bin_dir
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def owned(self, path):
        if self.run_as:
            account = pwd.getpwnam(self.run_as)
            os.chown(path, account.pw_uid, account.pw_gid)
        return path

    def initialise(self):
        self.owned(self.directory)
        password_file = os.path.join(self.directory, "admin-password")
        with open(os.open(password_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(self.password + "\n")
        self.owned(password_file)
        try:
            self.run_setup(
                parent_death_prefix("KILL", self.run_as)
                + [
                    os.path.join(self.bin_dir, "initdb"),
                    "--pgdata",
                    os.path.join(self.directory, "data"),
                    "--username",
                    self.admin_user,
                    "--pwfile",
                    password_file,
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ],
                cwd=self.directory,
                env=self.environment(),
            )
        finally:
            os.unlink(password_file)
        # Only TCP from 127.0.0.1 with a password; the socket (kept in our
        # directory) lets nobody in.
        with open(os.path.join(self.directory, "data", "pg_hba.conf"), "w") as hba:
            hba.write("host all all 127.0.0.1/32 scram-sha-256\n")

    def environment(self):
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}
        if self.run_as:
            environment["HOME"] = self.directory
        return environment

    def launch(self):
        self.spawn(
            parent_death_prefix("INT", self.run_as)
            + [
                os.path.join(self.bin_dir, "postgres"),
                "-D",
                os.path.join(self.directory, "data"),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                f"unix_socket_directories={self.directory}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            cwd=self.directory,
            env=self.environment(),
        )

    def answers(self):
        client = shutil.which("psql") or os.path.join(self.bin_dir, "psql")
        result = subprocess.run(
            [client, "-X", "-q", "-t", "-A", "-h", HOST, "-p", str(self.port)]
            + ["-U", self.admin_user, "-d", "postgres", "-c", "SELECT 1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": str(CLIENT_CONNECT_TIMEOUT_SECONDS)},
        )
        return result.returncode == 0 and result.stdout.strip() == "1"


class MariaDb(Server):
    engine = "mysql"
    admin_user = "root"
    graceful_signal = signal.SIGTERM

    def initialise(self):
        self.run_setup(
            [
                server_tool("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={os.path.join(self.directory, 'data')}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            cwd=self.directory,
        )
        # Run by the server as it starts, before it takes connections, with
        # every privilege (the bootstrap could not: it skips the grant
        # tables): root signs in with a password, over TCP from 127.0.0.1
        # (names are never resolved) as over the socket.
        self.init_file = os.path.join(self.directory, "admin.sql")
        with open(os.open(self.init_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(
                # The other root accounts the bootstrap made (::1, this
                # host's name) have no password: gone.
                f"DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '{HOST}');\n"
                "FLUSH PRIVILEGES;\n"
                f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{self.password}';\n"
                f"CREATE OR REPLACE USER 'root'@'{HOST}' IDENTIFIED BY '{self.password}';\n"
                f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{HOST}' WITH GRANT OPTION;\n"
                f"GRANT PROXY ON ''@'%' TO 'root'@'{HOST}' WITH GRANT OPTION;\n"
            )

    def wait_ready(self):
        try:
            super().wait_ready()
        finally:
            # It holds the password, and the server read it at start.
            os.unlink(self.init_file)

    def launch(self):
        self.spawn(
            parent_death_prefix("TERM")
            + [
                server_tool("mariadbd"),
                "--no-defaults",
                f"--datadir={os.path.join(self.directory, 'data')}",
                f"--socket={os.path.join(self.directory, 'mariadb.sock')}",
                f"--pid-file={os.path.join(self.directory, 'mariadb.pid')}",
                f"--init-file={self.init_file}",
                f"--bind-address={HOST}",
                f"--port={self.port}",
                "--skip-name-resolve",
                "--user=root",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=200",
            ],
            cwd=self.directory,
        )

    def answers(self):
        result = subprocess.run(
            [
                mariadb_client(),
                "--no-defaults",
                "--protocol=TCP",
                f"--host={HOST}",
                f"--port={self.port}",
                f"--user={self.admin_user}",
                f"--connect-timeout={CLIENT_CONNECT_TIMEOUT_SECONDS}",
                "--batch",
                "--skip-column-names",
                "--execute=SELECT 1",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MYSQL_PWD": self.password},
        )
        return result.returncode == 0 and result.stdout.strip() == "1"


def mariadb_client():
    return shutil.which("mariadb") or shutil.which("mysql") or "mariadb"


def server_tool(name):
    """A server binary, also from /usr/sbin when PATH lacks it (a non-login root shell)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def missing_tools(engines):
    """What this machine lacks for `engines`, as a list of sentences."""
    missing = []
    if "postgres" in engines:
        bin_dir = find_postgres_bin()
        if not bin_dir:
            missing.append("PostgreSQL's initdb (no /usr/lib/postgresql/*/bin/initdb)")
        elif not (shutil.which("psql") or os.access(os.path.join(bin_dir, "psql"), os.X_OK)):
            missing.append("psql")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                missing.append("a `postgres` system user (PostgreSQL refuses to run as root)")
            if not shutil.which("setpriv"):
                missing.append("setpriv (util-linux), to run PostgreSQL as `postgres`")
    if "mysql" in engines:
        for tool in ("mariadbd", "mariadb-install-db"):
            if not server_tool(tool):
                missing.append(tool)
        if not (shutil.which("mariadb") or shutil.which("mysql")):
            missing.append("the mariadb client")
    return missing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["postgres", "mysql"], help="start only this server")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="stop both when stdin closes")
    args = parser.parse_args(argv)
    engines = [args.only] if args.only else ["postgres", "mysql"]

    missing = missing_tools(engines)
    if missing:
        log("missing: " + "; ".join(missing) + " (`make databases` installs the servers)")
        return EXIT_MISSING_TOOLS

    stop_requested = threading.Event()

    def on_signal(number, _frame):
        stop_requested.set()
        raise Stop(signal.Signals(number).name)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)

    servers = []
    try:
        if args.exit_on_stdin_eof:

            def wait_for_stdin_eof():
                try:
                    while sys.stdin.buffer.read(4096):
                        pass
                finally:
                    # Wakes the main thread, which does the cleanup, even in the
                    # middle of a start.
                    os.kill(os.getpid(), signal.SIGTERM)

            threading.Thread(target=wait_for_stdin_eof, daemon=True).start()

        for engine in engines:
            server = Postgres(find_postgres_bin()) if engine == "postgres" else MariaDb()
            servers.append(server)
            server.start()
        print(json.dumps({server.engine: server.describe() for server in servers}), flush=True)

        while not stop_requested.wait(0.5):
            for server in servers:
                if server.process.poll() is not None:
                    log(f"{server.engine} exited on its own ({server.process.returncode}); {server.log_tail()}")
                    return 1
        return 0
    except Stop as stop:
        log(f"{stop}: stopping")
        return 0
    except StartFailed as error:
        log(str(error))
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)
        for server in reversed(servers):
            server.stop()
        if servers:
            log("stopped; directories removed")


if __name__ == "__main__":
    sys.exit(main())
