"""How `terraform plan` scales with the number of rotations (`make bench-scale`).

Against the local emulator with AWS's API quotas at their real rates
(`tests/support/emulator.py --quota-scale 1.0`), with a Terraform client and
the provider's release build (dev_overrides, no `terraform init`), for each
scenario:

  existing N   N rotations of secrets made beforehand with boto3, using
               `rotation_lambda_arn` on one of --lambdas shared Lambdas,
               `permission_scope = "account"`, `for_each` over the secrets;
  template N   N rotations with `rotation_type = "postgresql_single_user"`;

it times `terraform apply -auto-approve`, then `terraform plan
-detailed-exitcode` with nothing to change (it must exit 0 and print no
throttling error), and records during that plan the requests per API (the
emulator's `/_rdsrot/faults` counts), the answers the quotas throttled
(`/_rdsrot/quotas`) and the provider's peak RSS (VmHWM of every
`terraform-provider-rdsrot` below Terraform, polled from /proc). From the
requests it derives the quota floor: the least time the quotas allow for
them. The same plan over N `null_resource` of hashicorp/null gives the floor
of Terraform's own graph walk. Last, it times `terraform destroy
-auto-approve` under the same quotas, with its requests and quota floor: the
rotations that share a Lambda each ask whether another secret still rotates
with it, which is where `ListSecrets` (100 per second) comes in.

Every scenario destroys what it applied and stops its emulator, also when a
step fails or the run is interrupted. Results go to stdout, to
--results-json, and (unless --no-docs) into the `## Scale` section of
docs/benchmarks.md with an SVG plot beside it. `--render-only` redraws the
section and the plot from a results file without running anything.
"""

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import io
import json
import math
import os
import platform
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMULATOR = os.path.join(REPO, "tests", "support", "emulator.py")
DATABASES = os.path.join(REPO, "tests", "support", "databases.py")
sys.path.insert(0, os.path.dirname(EMULATOR))

REGION = "us-east-1"
PROVIDER_ADDRESS = "registry.terraform.io/rdsrot/rdsrot"
NULL_ADDRESS = "registry.terraform.io/hashicorp/null"
PROVIDER_PROCESS = "terraform-provider-rdsrot"
SECTION = "## Scale"

# What a plan prints when a throttle got through the provider's retries.
THROTTLE_WORDS = re.compile(r"throttl|TooManyRequests|Rate exceeded|Too Many Requests", re.IGNORECASE)

# Lambda calls that only read: the ones the "2 per distinct Lambda" target counts.
LAMBDA_READ = re.compile(r"^(Get|List)")

# Per-command ceiling, so that a wedged run ends instead of holding the machine.
COMMAND_TIMEOUT = 3600


class BenchError(RuntimeError):
    pass


def log(message):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------


class Emulator:
    """One emulator process; stopped on exit from the `with` block.

    Its stdin stays a pipe held by this process (`--exit-on-stdin-eof`), so
    even a benchmark killed with SIGKILL leaves no server behind.
    """

    def __init__(self, python, work, quota_scale):
        self.python = python
        self.log_path = os.path.join(work, "emulator.log")
        self.quota_scale = quota_scale
        self.process = None
        self.port = None

    def __enter__(self):
        with open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(
                [self.python, EMULATOR, "--port", "0", "--exit-on-stdin-eof", "--quota-scale", str(self.quota_scale)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            )
        try:
            line = self._first_line(60)
            match = re.match(r"rdsrot-emulator listening on http://127\.0\.0\.1:(\d+)", line)
            if not match:
                raise BenchError(f"the emulator did not start ({line!r}); see {self.log_path}")
            self.port = int(match.group(1))
            # Drain stdout so that the emulator never blocks on a full pipe.
            threading.Thread(target=self.process.stdout.read, daemon=True).start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if self.http("GET", "/moto-api/")[0] == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            raise BenchError(f"the emulator never answered; see {self.log_path}")
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def _first_line(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline().decode(errors="replace") if ready else ""

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def http(self, method, path, document=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            body = None if document is None else json.dumps(document)
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def control(self, method, resource, document=None):
        status, body = self.http(method, f"/_rdsrot/{resource}", document)
        if status != 200:
            raise BenchError(f"{method} /_rdsrot/{resource} answered {status}: {body[:300]!r}")
        return json.loads(body)

    def set_quota_scale(self, scale):
        """Also zeroes the throttle counts and refills every bucket."""
        return self.control("POST", "quotas", {"scale": scale})

    def reset_counts(self):
        return self.control("POST", "faults", {"seed": 0, "rules": []})

    def aws_env(self):
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }


def boto3_client(emulator, service):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=emulator.endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16),
    )


def minimal_zip():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("lambda_function.py", "def lambda_handler(event, context):\n    return None\n")
    return archive.getvalue()


def create_fixtures(emulator, count, lambdas, database=None):
    """N database secrets and `lambdas` existing rotation Lambdas.

    With `database` (a `Database`), each secret names a user of it that
    signs in with the secret's password, as the rotation functions of the
    templates need for their test run; otherwise the secrets name a made-up
    host, which the existing Lambdas' handler never reaches.

    Quotas are off while they are made: the set-up is not what is measured,
    and CreateSecret's own 50/s would only add waiting.
    """
    emulator.set_quota_scale(0)
    sm = boto3_client(emulator, "secretsmanager")
    users = database.create_users(count) if database else None

    def create(index):
        name = f"bench-db-{index:04d}"
        if users:
            value = {"engine": "postgres", "dbname": "postgres", **database.address, **users[index]}
        else:
            value = {
                "engine": "postgres",
                "host": "bench.cluster-abc.us-east-1.rds.amazonaws.com",
                "username": f"app_{index:04d}",
                # A fixed, obviously fake value: nothing reads it here.
                "password": f"bench-not-a-password-{index:04d}",
                "dbname": "app",
                "port": 5432,
            }
        return sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        secrets = list(pool.map(create, range(count)))

    functions = []
    if lambdas:
        iam = boto3_client(emulator, "iam")
        lam = boto3_client(emulator, "lambda")
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        code = minimal_zip()
        for index in range(lambdas):
            name = f"bench-rotator-{index:02d}"
            role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(trust))
            created = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Handler="lambda_function.lambda_handler",
                Role=role["Role"]["Arn"],
                Code={"ZipFile": code},
            )
            functions.append(created["FunctionArn"])
    return secrets, functions


class Database:
    """A PostgreSQL server of the test stack (`tests/support/databases.py`)
    on 127.0.0.1, stopped on exit from the `with` block; `create_users`
    makes login users for the template scenarios' secrets."""

    def __init__(self, python):
        self.python = python
        self.process = None
        self.admin = None
        self.address = None

    def __enter__(self):
        self.process = subprocess.Popen(
            [self.python, DATABASES, "--only", "postgres", "--exit-on-stdin-eof"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], 120)
        line = self.process.stdout.readline().decode(errors="replace") if ready else ""
        try:
            self.admin = json.loads(line)["postgres"]
        except (ValueError, KeyError):
            self.stop()
            raise BenchError("PostgreSQL did not start (`make databases` installs it)") from None
        self.address = {"host": self.admin["host"], "port": self.admin["port"]}
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def create_users(self, count):
        """`count` login users with random passwords: [{"username", "password"}]."""
        import secrets as random_source

        import databases

        users = [
            {"username": f"bench_user_{index:04d}", "password": random_source.token_hex(16)} for index in range(count)
        ]
        script = "".join(f"CREATE ROLE {u['username']} LOGIN PASSWORD '{u['password']}';\n" for u in users)
        psql = os.path.join(databases.find_postgres_bin(), "psql")
        done = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.admin["host"], "-p", str(self.admin["port"]),
             "-U", self.admin["user"], "-d", "postgres"],
            input=script.encode(),
            env={**os.environ, "PGPASSWORD": self.admin["password"]},
            capture_output=True,
        )
        if done.returncode != 0:
            # The error names the statement, not the passwords: psql echoes
            # no input with -q, and the message is cut to its first line.
            first = done.stderr.decode(errors="replace").splitlines()[:1]
            raise BenchError(f"creating the database users failed: {first}")
        return users


# --------------------------------------------------------------------------
# Terraform
# --------------------------------------------------------------------------


def descendants(root):
    """Every pid below `root`, from one pass over /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and ')'.
                parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    below, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in below}
        below |= frontier
    return below


def memory_kib(pid):
    """(VmRSS, VmHWM) in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU time of `pid` so far, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # After "pid (comm)": state is field 3, utime 14 and stime 15.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def tree_cpu_seconds(root):
    """CPU time of `root` and every process below it so far: each live one's
    own, plus what the children each has waited for used (cutime and
    cstime), so that short-lived processes (the rotation functions' runs,
    the database's connections) still count once they are gone."""
    total = 0.0
    for pid in {root} | descendants(root):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            continue
    return total


class StandInCpu:
    """CPU used by what stands in for AWS during one command: the emulator
    with the rotation functions it runs, and the database they rotate."""

    def __init__(self, emulator, database):
        self.roots = {"emulator": emulator.process.pid}
        if database is not None:
            self.roots["database"] = database.process.pid
        self.before = {}

    def start(self):
        self.before = {name: tree_cpu_seconds(pid) for name, pid in self.roots.items()}

    def used(self):
        return {name: tree_cpu_seconds(pid) - self.before[name] for name, pid in self.roots.items()}


def is_provider(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return PROVIDER_PROCESS.encode() in cmdline.read()
    except OSError:
        return False


class PeakRss:
    """Polls the provider processes below one Terraform process.

    VmHWM is the kernel's own high-water mark, so a peak between two polls
    is still seen, as long as one poll lands before the process exits.
    """

    def __init__(self, root, interval=0.02):
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.providers = set()
        # The last CPU time read of each provider process, seen or gone.
        self.cpu = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        known_not = set()
        last_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            # A full /proc scan finds new providers; between scans only the
            # known ones are read, which keeps the poll cheap.
            if now - last_scan > 0.1:
                last_scan = now
                for pid in descendants(self.root) - known_not - self.providers:
                    (self.providers if is_provider(pid) else known_not).add(pid)
            for pid in list(self.providers):
                memory = memory_kib(pid)
                if memory is None:
                    self.providers.discard(pid)
                    known_not.add(pid)
                    continue
                self.peak_kib = max(self.peak_kib, *memory)
                used = cpu_seconds(pid)
                if used is not None:
                    self.cpu[pid] = used
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak_kib


class Terraform:
    def __init__(self, binary, workdir, cli_config, extra_env):
        self.binary = binary
        self.workdir = workdir
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TF_", "AWS_")) and key not in ("CHECKPOINT_DISABLE",)
        }
        self.env.update(
            {
                "TF_CLI_CONFIG_FILE": cli_config,
                "CHECKPOINT_DISABLE": "1",
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
            }
        )
        self.env.update(extra_env)

    def run(self, *args, timeout=COMMAND_TIMEOUT):
        """(exit code, output, seconds, provider peak RSS in KiB). The CPU
        seconds of Terraform itself and of its providers are left in
        `last_cpu` (providers as last polled, so short of at most one poll
        interval each)."""
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out_path = os.path.join(self.workdir, f"terraform-{args[0]}.out")
        with open(out_path, "wb") as out:
            started = time.monotonic()
            # A process group of its own: Ctrl-C on the benchmark reaches
            # Terraform only through `interrupt`, which lets it stop cleanly.
            process = subprocess.Popen(
                [self.binary, *args, "-input=false", "-no-color"],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            sampler = PeakRss(process.pid)
            try:
                code = process.wait(timeout=timeout)
            except BaseException:
                interrupt(process)
                raise
            finally:
                peak = sampler.stop()
            seconds = time.monotonic() - started
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Terraform reaps its providers, so the children's rusage holds both.
        whole = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        providers = sum(sampler.cpu.values())
        self.last_cpu = {"terraform": max(0.0, whole - providers), "providers": providers}
        with open(out_path, encoding="utf-8", errors="replace") as out:
            return code, out.read(), seconds, peak


def interrupt(process):
    """Ctrl-C for Terraform (it asks its providers to stop), then a kill."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def dev_overrides_config(path, provider_dir):
    with open(path, "w") as config:
        config.write(
            "provider_installation {\n"
            f'  dev_overrides {{\n    "{PROVIDER_ADDRESS}" = "{provider_dir}"\n  }}\n'
            "  direct {}\n}\n"
        )


def rotation_config(workdir, kind, secrets, functions):
    rotations = {}
    for index, secret in enumerate(secrets):
        entry = {"secret": secret}
        if kind == "existing":
            entry["lambda"] = functions[index % len(functions)]
        rotations[f"db{index:04d}"] = entry
    if kind == "existing":
        body = """
resource "rdsrot_rotation" "bench" {
  for_each            = var.rotations
  secret_id           = each.value.secret
  rotation_lambda_arn = each.value.lambda
  permission_scope    = "account"
  rotate_immediately  = false

  rotation_rules {
    automatically_after_days = 30
  }
}
"""
        variable_type = "map(object({ secret = string, lambda = string }))"
    else:
        body = """
resource "rdsrot_rotation" "bench" {
  for_each           = var.rotations
  secret_id          = each.value.secret
  rotation_type      = "postgresql_single_user"
  rotate_immediately = false

  rotation_rules {
    automatically_after_days = 30
  }
}
"""
        variable_type = "map(object({ secret = string }))"
    with open(os.path.join(workdir, "main.tf"), "w") as main:
        main.write(
            'terraform {\n  required_providers {\n    rdsrot = {\n      source = "rdsrot/rdsrot"\n    }\n  }\n}\n\n'
            f'provider "rdsrot" {{\n  region = "{REGION}"\n}}\n\n'
            f'variable "rotations" {{\n  type = {variable_type}\n}}\n' + body
        )
    with open(os.path.join(workdir, "terraform.tfvars.json"), "w") as tfvars:
        json.dump({"rotations": rotations}, tfvars, indent=1)


def state_has_resources(workdir):
    try:
        with open(os.path.join(workdir, "terraform.tfstate")) as state:
            return bool(json.load(state).get("resources"))
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------
# Quota floor
# --------------------------------------------------------------------------


def quota_floor(calls):
    """The least seconds AWS's quotas allow for `calls` ({"service:call": n}).

    Per class: requests / rate, less the one second that a full bucket (one
    second's worth of tokens) admits at once; the classes run in parallel,
    so the floor is the slowest class. Classes and rates are the emulator's
    own (`aws_under_load.QUOTA_TABLE`), so the floor matches what it enforces.
    """
    import aws_under_load

    per_class = {}
    for key, count in calls.items():
        service, call = key.split(":", 1)
        found = aws_under_load.quota_class(aws_under_load.RequestName(service, call, "", REGION, "testing"))
        if found is None:
            continue
        name, rate = found
        per_class.setdefault(name, [0, rate])[0] += count
    floors = {name: max(0.0, count / rate - 1.0) for name, (count, rate) in per_class.items()}
    if not floors:
        return 0.0, None
    slowest = max(floors, key=floors.get)
    return floors[slowest], slowest


def seen_counts(report):
    return {key: value["seen"] for key, value in report["calls"].items() if value["seen"]}


def throttled_counts(report):
    return {key: value["throttled"] for key, value in report["classes"].items() if value["throttled"]}


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


def run_rotation_scenario(args, kind, count, scratch):
    label = f"{kind} {count}"
    workdir = tempfile.mkdtemp(prefix=f"{kind}-{count}-", dir=scratch)
    result = {"kind": kind, "n": count, "lambdas": args.lambdas if kind == "existing" else count}
    log(f"{label}: starting the emulator")
    with contextlib.ExitStack() as servers:
        emulator = servers.enter_context(Emulator(args.python, workdir, args.quota_scale))
        database = servers.enter_context(Database(args.python)) if kind == "template" else None
        secrets, functions = create_fixtures(emulator, count, args.lambdas if kind == "existing" else 0, database)
        log(f"{label}: {len(secrets)} secrets and {len(functions)} Lambdas made")
        rotation_config(workdir, kind, secrets, functions)
        stand_in = StandInCpu(emulator, database)
        cli_config = os.path.join(workdir, "terraform.rc")
        dev_overrides_config(cli_config, os.path.dirname(os.path.abspath(args.provider)))
        terraform = Terraform(args.terraform, workdir, cli_config, emulator.aws_env())
        try:
            emulator.set_quota_scale(args.quota_scale)
            emulator.reset_counts()
            log(f"{label}: terraform apply")
            stand_in.start()
            code, output, seconds, peak = terraform.run("apply", "-auto-approve")
            stand_in_cpu = stand_in.used()
            if code != 0:
                raise BenchError(f"{label}: apply exited {code}:\n{output[-4000:]}")
            apply_calls = seen_counts(emulator.control("GET", "faults"))
            result.update(
                apply_seconds=seconds,
                apply_peak_rss_kib=peak,
                apply_calls=apply_calls,
                apply_floor_seconds=quota_floor(apply_calls)[0],
                apply_throttled=throttled_counts(emulator.control("GET", "quotas")),
                apply_cpu_seconds={**terraform.last_cpu, **stand_in_cpu},
            )
            result["state_bytes"] = state_bytes(workdir)
            log(f"{label}: applied in {seconds:.1f} s")

            # The plan starts with every bucket full and every count at zero.
            emulator.set_quota_scale(args.quota_scale)
            emulator.reset_counts()
            log(f"{label}: terraform plan -detailed-exitcode")
            stand_in.start()
            code, output, seconds, peak = terraform.run("plan", "-detailed-exitcode")
            stand_in_cpu = stand_in.used()
            calls = seen_counts(emulator.control("GET", "faults"))
            throttled = throttled_counts(emulator.control("GET", "quotas"))
            floor, slowest = quota_floor(calls)
            surfaced = sorted({m.group(0) for m in THROTTLE_WORDS.finditer(output)})
            result.update(
                plan_seconds=seconds,
                plan_exit=code,
                plan_peak_rss_kib=peak,
                plan_calls=calls,
                plan_throttled=throttled,
                plan_throttle_surfaced=surfaced,
                plan_floor_seconds=floor,
                plan_floor_class=slowest,
                plan_cpu_seconds={**terraform.last_cpu, **stand_in_cpu},
            )
            if code != 0:
                result["plan_output_tail"] = output[-4000:]
            log(f"{label}: plan exited {code} in {seconds:.1f} s (quota floor {floor:.2f} s)")

            emulator.set_quota_scale(args.quota_scale)
            emulator.reset_counts()
            log(f"{label}: terraform destroy")
            stand_in.start()
            code, output, seconds, peak = terraform.run("destroy", "-auto-approve")
            stand_in_cpu = stand_in.used()
            calls = seen_counts(emulator.control("GET", "faults"))
            result.update(
                destroy_seconds=seconds,
                destroy_exit=code,
                destroy_calls=calls,
                destroy_floor_seconds=quota_floor(calls)[0],
                destroy_throttled=throttled_counts(emulator.control("GET", "quotas")),
                destroy_cpu_seconds={**terraform.last_cpu, **stand_in_cpu},
            )
            if code != 0:
                result["destroy_output_tail"] = output[-4000:]
            log(f"{label}: destroy exited {code} in {seconds:.1f} s")
        finally:
            cleanup(terraform, emulator, workdir, label)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def cleanup(terraform, emulator, workdir, label):
    """Destroys what a failed or interrupted scenario left applied. Quotas are
    off for it: it is not measured."""
    if not state_has_resources(workdir):
        return
    log(f"{label}: terraform destroy")
    try:
        emulator.set_quota_scale(0)
        code, output, seconds, _ = terraform.run("destroy", "-auto-approve")
    except BaseException as error:
        log(f"{label}: destroy did not finish ({error!r}); the emulator is stopped all the same")
        raise
    if code != 0:
        log(f"{label}: destroy exited {code} (the emulator is stopped all the same):\n{output[-2000:]}")
    else:
        log(f"{label}: destroyed in {seconds:.1f} s")


# Triggers of a `null_resource` standing in for a rotation's attributes: as
# many values, padded so that each instance takes as much state.
SIZED_TRIGGERS = 30
# What a `null_resource` instance takes in the state besides its triggers'
# values (keys, indentation, id), roughly.
NULL_INSTANCE_BASE_BYTES = 250
TRIGGER_OVERHEAD_BYTES = 29


def run_null_scenario(args, count, scratch, like=None):
    """N `null_resource`: Terraform's own walk. With `like` (a rotation
    scenario's result), each instance carries triggers that take as much
    state as one of its rotations: Terraform serialises the whole state as
    it goes, and that work grows with it."""
    label = f"null {count}" if like is None else f"null {count} sized as {like['kind']} {like['n']}"
    workdir = tempfile.mkdtemp(prefix=f"null-{count}-", dir=scratch)
    version = null_version(args.null_provider)
    mirror = os.path.join(workdir, "mirror", NULL_ADDRESS, version, "linux_amd64")
    os.makedirs(mirror)
    shutil.copy2(args.null_provider, mirror)
    cli_config = os.path.join(workdir, "terraform.rc")
    with open(cli_config, "w") as config:
        config.write(
            "provider_installation {\n  filesystem_mirror {\n"
            f'    path    = "{os.path.join(workdir, "mirror")}"\n'
            f'    include = ["{NULL_ADDRESS}"]\n  }}\n}}\n'
        )
    keys = {f"db{index:04d}": str(index) for index in range(count)}
    with open(os.path.join(workdir, "main.tf"), "w") as main:
        main.write(
            "terraform {\n  required_providers {\n"
            f'    null = {{\n      source  = "hashicorp/null"\n      version = "{version}"\n    }}\n  }}\n}}\n\n'
            'variable "rotations" {\n  type = map(string)\n}\n\n'
            'resource "null_resource" "bench" {\n  for_each = var.rotations\n'
            "  triggers = {\n    key = each.value\n" + sized_triggers(like) + "  }\n}\n"
        )
    with open(os.path.join(workdir, "terraform.tfvars.json"), "w") as tfvars:
        json.dump({"rotations": keys}, tfvars)
    terraform = Terraform(args.terraform, workdir, cli_config, {})
    result = {"kind": "null", "n": count, "null_version": version}
    if like is not None:
        result.update(kind="null-sized", like=f"{like['kind']} {like['n']}")
    code, output, _, _ = terraform.run("init")
    if code != 0:
        raise BenchError(f"{label}: init exited {code}:\n{output[-3000:]}")
    # The same three commands as the rotations', each the floor of
    # Terraform's own walk for that command over as many resources.
    for step, command in (("apply", ("apply", "-auto-approve")), ("plan", ("plan", "-detailed-exitcode")),
                          ("destroy", ("destroy", "-auto-approve"))):
        code, output, seconds, _ = terraform.run(*command)
        if code != 0:
            raise BenchError(f"{label}: {step} exited {code}:\n{output[-3000:]}")
        result[f"{step}_seconds"] = seconds
        result[f"{step}_cpu_seconds"] = terraform.last_cpu
        log(f"{label}: {step} in {seconds:.1f} s")
        if step == "apply":
            result["state_bytes"] = state_bytes(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def sized_triggers(like):
    """HCL lines of padding triggers for a `null_resource` sized like `like`."""
    if like is None or not like.get("state_bytes"):
        return ""
    per_instance = like["state_bytes"] / like["n"]
    length = max(1, int((per_instance - NULL_INSTANCE_BASE_BYTES) / SIZED_TRIGGERS) - TRIGGER_OVERHEAD_BYTES)
    return "".join(f'    t{index:02d} = "{"x" * length}-${{each.value}}"\n' for index in range(SIZED_TRIGGERS))


def state_bytes(workdir):
    path = os.path.join(workdir, "terraform.tfstate")
    return os.path.getsize(path) if os.path.exists(path) else None


def null_version(binary):
    match = re.search(r"terraform-provider-null_v(\d+\.\d+\.\d+)", os.path.basename(binary))
    if not match:
        raise BenchError(f"cannot tell the null provider's version from {binary}")
    return match.group(1)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def mib(kib):
    return kib / 1024 if kib else 0.0


def lambda_reads(calls):
    return sum(n for key, n in calls.items() if key.startswith("lambda:") and LAMBDA_READ.match(key.split(":", 1)[1]))


def null_seconds(results, count, step="plan"):
    """How long `step` took over `count` `null_resource` in the same run."""
    for result in results["runs"]:
        if result["kind"] == "null" and result["n"] == count:
            return result.get(f"{step}_seconds")
    return None


def sized_null_seconds(results, rotation, step):
    """How long `step` took over `null_resource` sized like `rotation`."""
    like = f"{rotation['kind']} {rotation['n']}"
    for result in results["runs"]:
        if result["kind"] == "null-sized" and result.get("like") == like:
            return result.get(f"{step}_seconds")
    return None


def null_plan(results, count):
    return null_seconds(results, count, "plan")


def requests_per_rotation(calls, count):
    """Signed requests of a command per rotation, the rotation functions'
    own calls left out (they are Secrets Manager's work, not the provider's)."""
    return sum(calls.values()) / count if count else None


def rotations(results):
    return [r for r in results["runs"] if r["kind"] in ("existing", "template")]


def fmt(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def summary_table(results):
    lines = [
        "| rotations | N | Lambdas | apply (s) | apply quota floor (s) | null apply (s) | apply requests / rotation "
        "| plan (s) | plan exit | quota floor (s) | plan / floor "
        "| null plan (s) | throttled | Lambda reads | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rotations(results):
        kind = "existing Lambda" if r["kind"] == "existing" else "template"
        if "plan_seconds" not in r:
            lines.append(f"| {kind} | {r['n']} | {r['lambdas']} | failed: see the run's output |" + " |" * 11)
            continue
        floor = r.get("plan_floor_seconds")
        ratio = r["plan_seconds"] / floor if floor else None
        lines.append(
            f"| {kind} | {r['n']} | {r['lambdas']} | {fmt(r.get('apply_seconds'))} | {fmt(r.get('apply_floor_seconds'), 2)} "
            f"| {fmt(null_seconds(results, r['n'], 'apply'))} "
            f"| {fmt(requests_per_rotation(r.get('apply_calls', {}), r['n']), 2)} "
            f"| {fmt(r.get('plan_seconds'))} "
            f"| {r.get('plan_exit', '—')} | {fmt(floor, 2)} | {fmt(ratio, 2)} | {fmt(null_plan(results, r['n']))} "
            f"| {sum(r.get('plan_throttled', {}).values())} | {lambda_reads(r.get('plan_calls', {}))} "
            f"| {fmt(mib(r.get('plan_peak_rss_kib')))} |"
        )
    return "\n".join(lines)


def cpu_table(results):
    lines = [
        "| rotations | N | command | took (s) | Terraform CPU (s) | provider CPU (s) | emulator CPU (s) "
        "| database CPU (s) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    kinds = {"existing": "existing Lambda", "template": "template", "null": "`null_resource`"}
    for r in results["runs"]:
        kind = kinds.get(r["kind"], f"`null_resource` sized as {r.get('like')}")
        for step in ("apply", "plan", "destroy"):
            cpu = r.get(f"{step}_cpu_seconds")
            if not cpu:
                continue
            # The null provider is not told apart: Terraform's column holds it.
            providers = None if r["kind"].startswith("null") else cpu["providers"]
            lines.append(
                f"| {kind} | {r['n']} | {step} | {fmt(r[f'{step}_seconds'])} | {fmt(cpu['terraform'])} "
                f"| {fmt(providers)} | {fmt(cpu.get('emulator'))} | {fmt(cpu.get('database'))} |"
            )
    return "\n".join(lines) if len(lines) > 2 else ""


def destroy_table(results):
    lines = [
        "| rotations | N | Lambdas | destroy (s) | exit | quota floor (s) | null destroy (s) | requests / rotation "
        "| `ListSecrets` | `DescribeSecret` | throttled |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rotations(results):
        if "destroy_seconds" not in r:
            continue
        kind = "existing Lambda" if r["kind"] == "existing" else "template"
        calls = r.get("destroy_calls", {})
        lines.append(
            f"| {kind} | {r['n']} | {r['lambdas']} | {fmt(r['destroy_seconds'])} | {r.get('destroy_exit', '—')} "
            f"| {fmt(r.get('destroy_floor_seconds'), 2)} | {fmt(null_seconds(results, r['n'], 'destroy'))} "
            f"| {fmt(requests_per_rotation(calls, r['n']), 2)} | {calls.get('secretsmanager:ListSecrets', 0)} "
            f"| {calls.get('secretsmanager:DescribeSecret', 0)} | {sum(r.get('destroy_throttled', {}).values())} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def calls_table(results, step="plan"):
    runs = [r for r in rotations(results) if f"{step}_calls" in r]
    keys = sorted({key for r in runs for key in r.get(f"{step}_calls", {})})
    header = " | ".join(f"{'existing' if r['kind'] == 'existing' else 'template'} {r['n']}" for r in runs)
    lines = [f"| API call | {header} |", "|---|" + "---:|" * len(runs)]
    for key in keys:
        cells = []
        for r in runs:
            count = r.get(f"{step}_calls", {}).get(key, 0)
            cells.append(f"{count / r['n']:.3f} ({count})" if count else "—")
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(results, lambda_read_constant):
    """(target, measured, holds) per target of the issue; holds is None when
    the run needed for it was not made."""
    def run(kind, count):
        return next((r for r in rotations(results) if r["kind"] == kind and r["n"] == count), None)

    checks = []
    big = run("existing", 1000)
    if big and "plan_exit" in big:
        reads = lambda_reads(big["plan_calls"])
        limit = 2 * big["lambdas"] + lambda_read_constant
        surfaced = big["plan_throttle_surfaced"]
        checks.append(
            (
                f"plan of 1,000 existing-Lambda rotations over {big['lambdas']} Lambdas: exit 0, no throttling "
                f"surfaced, Lambda reads ≤ 2 × {big['lambdas']} + {lambda_read_constant}",
                f"exit {big['plan_exit']}, throttling surfaced: {', '.join(surfaced) or 'none'}, "
                f"Lambda reads {reads} (limit {limit})",
                big["plan_exit"] == 0 and not surfaced and reads <= limit,
            )
        )
        rss = mib(big["plan_peak_rss_kib"])
        checks.append(("provider peak RSS during the 1,000 plan ≤ 40 MiB", f"{rss:.1f} MiB", rss <= 40))
    else:
        checks.append(("plan of 1,000 existing-Lambda rotations", "not run", None))
        checks.append(("provider peak RSS during the 1,000 plan ≤ 40 MiB", "not run", None))
    small = run("template", 100)
    if small and "plan_exit" in small:
        floor = small["plan_floor_seconds"]
        ratio = small["plan_seconds"] / floor if floor else math.inf
        checks.append(
            (
                "plan of 100 template rotations within 1.5 × its quota floor",
                f"{small['plan_seconds']:.1f} s against a floor of {floor:.2f} s ({small['plan_floor_class']}): "
                f"{ratio:.2f} ×",
                small["plan_exit"] == 0 and ratio <= 1.5,
            )
        )
    else:
        checks.append(("plan of 100 template rotations within 1.5 × its quota floor", "not run", None))
    for kind, count, what in (("existing", 1000, "1,000 existing-Lambda"), ("template", 100, "100 template")):
        for step in ("apply", "destroy"):
            target = f"{step} of {what} rotations within 1.5 × the larger of its quota floor and the null floor"
            measured = run(kind, count)
            null = null_seconds(results, count, step)
            if not measured or f"{step}_seconds" not in measured or null is None:
                checks.append((target, "not run", None))
                continue
            quota = measured[f"{step}_floor_seconds"]
            floor = max(quota, null)
            took = measured[f"{step}_seconds"]
            ok = measured.get(f"{step}_exit", 0) == 0
            checks.append(
                (
                    target,
                    f"{took:.1f} s against {floor:.1f} s (quota {quota:.2f} s, null {null:.1f} s): {took / floor:.2f} ×"
                    + ("" if ok else f", exit {measured.get(f'{step}_exit')}"),
                    ok and took <= 1.5 * floor,
                )
            )
            sized = sized_null_seconds(results, measured, step)
            if sized is not None:
                floor = max(quota, sized)
                checks.append(
                    (
                        f"(for comparison) the same, with the null floor of `null_resource` taking as much state",
                        f"{took:.1f} s against {floor:.1f} s (quota {quota:.2f} s, sized null {sized:.1f} s): "
                        f"{took / floor:.2f} ×",
                        ok and took <= 1.5 * floor,
                    )
                )
    return checks


def targets_table(checks):
    lines = ["| target | measured | holds |", "|---|---|---|"]
    for target, measured, holds in checks:
        verdict = {True: "yes", False: "**no**", None: "not measured"}[holds]
        lines.append(f"| {target} | {measured} | {verdict} |")
    return "\n".join(lines)


def section(results, svg_name, lambda_read_constant):
    machine = results["machine"]
    null_versions = sorted({r["null_version"] for r in results["runs"] if r["kind"] == "null"})
    missing = [n for n in results["requested_sizes"] if n not in {r["n"] for r in rotations(results) if r["kind"] == "existing"}]
    lines = [
        SECTION,
        "",
        f"Measured on {results['date']} on {machine['nproc']} cores ({machine['cpu']}), {machine['memory_gib']:.0f} GiB, "
        f"with Terraform {results['terraform_version']} and a release build of the provider "
        f"({results['provider_version']}, commit {results['commit']}), against the local emulator with AWS's "
        f"API quotas at scale {results['quota_scale']:g}; Terraform's default parallelism (10). "
        f"Reproduce with `{results['command']}`.",
        "",
        "Existing-Lambda rotations share "
        f"{results['lambdas']} Lambdas with `permission_scope = \"account\"`; template rotations use "
        "`rotation_type = \"postgresql_single_user\"`; every scenario is a `for_each` over secrets made "
        "beforehand, with `rotate_immediately = false`: each apply waits for Secrets Manager's test run of "
        "the rotation (the `testSecret` step, the function's own code against a real database for the "
        "templates) and reads the function's log to judge it. *plan* is `terraform plan -detailed-exitcode` right after the apply (nothing to "
        "change); *quota floor* (and *apply quota floor*, the same for the apply's requests) is the least time AWS's quotas allow for the requests that plan made "
        "(per quota class, requests ÷ rate less the one-second burst; the slowest class); *null plan* is the "
        f"same plan over as many `null_resource` of hashicorp/null {', '.join(null_versions) or '—'}, the floor of "
        "Terraform's own walk; *throttled* counts the answers the emulator's quotas throttled during the plan "
        "(the provider retried them); *Lambda reads* counts Lambda `Get*`/`List*` requests during the plan; "
        "*peak RSS* is the largest VmHWM of any provider process during the plan; *null apply* and *null destroy* "
        "are the same commands over as many `null_resource`; *requests / rotation* counts every request the "
        "provider sent during the command (the rotation functions' own calls left out).",
        "",
        summary_table(results),
        "",
    ]
    if missing:
        lines += [
            f"Not run here: N = {', '.join(f'{n:,}' for n in missing)} (the target's defaults include "
            f"{'it' if len(missing) == 1 else 'them'}; `make bench-scale` runs them).",
            "",
        ]
    lines += [
        f"![Plan time against N, beside the quota floor and the null floor]({svg_name})",
        "",
        "Requests per resource during the plan, by API call (total in brackets):",
        "",
        calls_table(results),
        "",
        "During the apply:",
        "",
        calls_table(results, "apply"),
        "",
        "During the destroy:",
        "",
        calls_table(results, "destroy"),
        "",
        "Targets:",
        "",
        targets_table(targets(results, lambda_read_constant)),
        "",
        "The rows marked *for comparison* measure the null floor with `null_resource` whose triggers take as "
        "much state per instance as a rotation does (30 padded triggers): Terraform serialises the whole state "
        "as an apply or destroy goes on, so its own work grows with what each instance holds, and a "
        "`null_resource` with one trigger holds a tenth of a rotation's attributes.",
        "",
    ]
    cpus = cpu_table(results)
    if cpus:
        lines += [
            "Where each command's time goes: CPU seconds during it of Terraform itself, of the provider processes "
            "and of what stands in for AWS: the emulator (moto and its layers, with the processes that run "
            "the rotation functions' code) and the PostgreSQL server the template rotations rotate, all on "
            "the same cores; the "
            "`null_resource` rows are the null floor's own commands, whose Terraform column includes the null "
            "provider:",
            "",
            cpus,
            "",
        ]
    destroys = destroy_table(results)
    if destroys:
        lines += [
            "`terraform destroy -auto-approve` of the same rotations, under the same quotas. A rotation that "
            "shares a Lambda asks, after its rotation is off, whether another secret still rotates with it: "
            "one `ListSecrets` listing per Lambda per provider process, each listed candidate confirmed with "
            "`DescribeSecret` (see *Who else uses a shared Lambda* in the resource's docs):",
            "",
            destroys,
            "",
        ]
    return "\n".join(lines)


def write_section(path, text):
    """Replaces the `## Scale` section (up to the next `## ` heading) and
    leaves every other section as it is."""
    try:
        with open(path) as doc:
            current = doc.read()
    except FileNotFoundError:
        current = ""
    pattern = re.compile(rf"^{re.escape(SECTION)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: text + "\n", current, count=1)
    else:
        updated = (current.rstrip("\n") + "\n\n" if current.strip() else "") + text
    with open(path, "w") as doc:
        doc.write(updated.rstrip("\n") + "\n")


def svg_plot(results):
    """Plan time against N (log scale), by hand: no plotting library needed."""
    existing = sorted((r for r in rotations(results) if r["kind"] == "existing" and "plan_seconds" in r), key=lambda r: r["n"])
    template = sorted((r for r in rotations(results) if r["kind"] == "template" and "plan_seconds" in r), key=lambda r: r["n"])
    nulls = sorted((r for r in results["runs"] if r["kind"] == "null"), key=lambda r: r["n"])
    series = [
        ("existing-Lambda plan", "#1f77b4", "solid", [(r["n"], r["plan_seconds"]) for r in existing]),
        ("its quota floor", "#1f77b4", "dashed", [(r["n"], r["plan_floor_seconds"]) for r in existing]),
        ("template plan", "#d62728", "solid", [(r["n"], r["plan_seconds"]) for r in template]),
        ("its quota floor", "#d62728", "dashed", [(r["n"], r["plan_floor_seconds"]) for r in template]),
        ("null_resource plan (Terraform's floor)", "#555555", "dotted", [(r["n"], r["plan_seconds"]) for r in nulls]),
    ]
    series = [s for s in series if s[3]]
    points = [p for s in series for p in s[3]]
    width, height = 720, 420
    left, right, top, bottom = 70, 250, 30, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    ns = [n for n, _ in points] or [100, 1000]
    x_lo, x_hi = math.log10(min(ns)) - 0.1, math.log10(max(ns)) + 0.1
    if x_hi - x_lo < 0.5:
        x_lo, x_hi = x_lo - 0.25, x_hi + 0.25
    y_hi = max([s for _, s in points] + [1.0])
    step = nice_step(y_hi / 5)
    y_hi = math.ceil(y_hi / step) * step

    def x(n):
        return left + (math.log10(n) - x_lo) / (x_hi - x_lo) * plot_w

    def y(seconds):
        return top + plot_h - seconds / y_hi * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">terraform plan with nothing to change, against N</text>',
    ]
    tick = 0.0
    while tick <= y_hi + 1e-9:
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
        tick += step
    for n in sorted(set(ns)):
        out.append(f'<line x1="{x(n):.1f}" x2="{x(n):.1f}" y1="{top}" y2="{top + plot_h}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x(n):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{n:,}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 20}" text-anchor="middle">N rotations (log scale)</text>')
    out.append(
        f'<text transform="translate(20 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">seconds</text>'
    )
    dashes = {"solid": "", "dashed": ' stroke-dasharray="6 4"', "dotted": ' stroke-dasharray="2 3"'}
    for index, (label, colour, style, data) in enumerate(series):
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(n):.1f},{y(s):.1f}" for i, (n, s) in enumerate(data))
        out.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dashes[style]}/>')
        for n, s in data:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(s):.1f}" r="3.5" fill="{colour}"/>')
        legend_y = top + 14 + index * 22
        legend_x = left + plot_w + 16
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 28}" y1="{legend_y - 4}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dashes[style]}/>'
        )
        out.append(f'<text x="{legend_x + 36}" y="{legend_y}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def nice_step(raw):
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def print_report(results, lambda_read_constant):
    print()
    print(summary_table(results))
    print()
    for step in ("plan", "apply", "destroy"):
        print(f"requests per rotation, {step}:")
        print(calls_table(results, step))
        print()
    print(cpu_table(results))
    print()
    print(destroy_table(results))
    print()
    print(targets_table(targets(results, lambda_read_constant)))


# --------------------------------------------------------------------------
# Machine and versions
# --------------------------------------------------------------------------


def machine():
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = 0.0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": memory}


def terraform_version(binary):
    output = subprocess.run(
        [binary, "version", "-json"],
        capture_output=True,
        text=True,
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": "/dev/null"},
        check=True,
    ).stdout
    return json.loads(output)["terraform_version"]


def provider_version():
    with open(os.path.join(REPO, "Cargo.toml")) as cargo:
        match = re.search(r'^version\s*=\s*"([^"]+)"', cargo.read(), re.MULTILINE)
    return match.group(1) if match else "unknown"


def commit():
    try:
        return subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def sizes(text):
    return [int(part) for part in text.split(",") if part.strip()] if text else []


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=sizes, default=[100, 300, 1000], help="existing-Lambda N (comma-separated)")
    parser.add_argument("--template-sizes", type=sizes, default=[100], help="template N (comma-separated)")
    parser.add_argument("--lambdas", type=int, default=10, help="shared Lambdas of the existing-Lambda scenarios")
    parser.add_argument("--quota-scale", type=float, default=1.0, help="the emulator's --quota-scale")
    parser.add_argument("--terraform", default="/usr/local/bin/terraform")
    parser.add_argument("--provider", default=os.path.join(REPO, "target", "release", PROVIDER_PROCESS))
    parser.add_argument("--null-provider", help="a terraform-provider-null_vX.Y.Z_x4 binary (no null floor without it)")
    parser.add_argument("--python", default=os.path.join(REPO, ".venv", "bin", "python"), help="the emulator's python")
    parser.add_argument("--results-json", default=os.path.join(REPO, "target", "bench-scale", "results.json"))
    parser.add_argument("--doc", default=os.path.join(REPO, "docs", "benchmarks.md"))
    parser.add_argument("--svg", default=os.path.join(REPO, "docs", "benchmarks-scale.svg"))
    parser.add_argument("--no-docs", action="store_true", help="print and save results only")
    parser.add_argument("--render-only", action="store_true", help="redraw the docs from --results-json")
    parser.add_argument("--keep", action="store_true", help="keep each scenario's directory (state, logs)")
    parser.add_argument(
        "--lambda-read-constant",
        type=int,
        default=5,
        help="the 'small constant' of the target: Lambda reads <= 2 per Lambda + this",
    )
    parser.add_argument("--command", default="make bench-scale", help="the command the docs say reproduces the run")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every scenario's destroy and emulator
    # stop still run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if args.render_only:
        with open(args.results_json) as saved:
            results = json.load(saved)
    else:
        for path, what in ((args.terraform, "Terraform"), (args.provider, "the provider"), (args.python, "the venv")):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{what} is missing: {path}")
        results = {
            "date": datetime.date.today().isoformat(),
            "machine": machine(),
            "terraform_version": terraform_version(args.terraform),
            "provider_version": provider_version(),
            "commit": commit(),
            "quota_scale": args.quota_scale,
            "lambdas": args.lambdas,
            "requested_sizes": sorted(set(args.sizes)),
            "command": args.command,
            "runs": [],
        }
        os.makedirs(os.path.dirname(args.results_json), exist_ok=True)
        scratch = tempfile.mkdtemp(prefix="rdsrot-bench-scale-")
        failed = False
        try:
            null_sizes = sorted(set(args.sizes) | set(args.template_sizes))
            plan = [("existing", n) for n in args.sizes] + [("template", n) for n in args.template_sizes]
            for kind, count in plan:
                try:
                    results["runs"].append(run_rotation_scenario(args, kind, count, scratch))
                except BenchError as error:
                    failed = True
                    log(f"{kind} {count} failed: {error}")
                    results["runs"].append({"kind": kind, "n": count, "lambdas": args.lambdas, "error": str(error)})
                save(results, args.results_json)
            if args.null_provider:
                for count in null_sizes:
                    results["runs"].append(run_null_scenario(args, count, scratch))
                    save(results, args.results_json)
                for like in [r for r in rotations(results) if r.get("state_bytes")]:
                    results["runs"].append(run_null_scenario(args, like["n"], scratch, like))
                    save(results, args.results_json)
        finally:
            save(results, args.results_json)
            if not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)
        if failed:
            log("some scenarios failed; see above")

    print_report(results, args.lambda_read_constant)
    if not args.no_docs:
        svg_name = os.path.basename(args.svg)
        with open(args.svg, "w") as svg:
            svg.write(svg_plot(results))
        write_section(args.doc, section(results, svg_name, args.lambda_read_constant))
        log(f"wrote {os.path.relpath(args.doc, REPO)} ({SECTION}) and {os.path.relpath(args.svg, REPO)}")
    return 1 if any("error" in r for r in results["runs"]) else 0


def save(results, path):
    with open(path, "w") as out:
        json.dump(results, out, indent=1)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        log(f"error: {error}")
        sys.exit(1)
