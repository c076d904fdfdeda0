"""The container-free local stack: PostgreSQL, Kafka (KRaft, one node), an SMTP sink and the four services.

An *instance* (`HUBNET_STACK`, default `dev`; `make test` uses `test`) keeps all its state under
`.local/<instance>/`: the database cluster, the Kafka log, received mail, logs, pidfiles and
`stack.env`, the connection settings for clients. Instances differ in their ports, so several run
side by side. Every process is started in a process group of its own and recorded in a pidfile;
stopping signals exactly those groups. Starting is idempotent, and waits for health by polling
a condition within a bound.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import httpx
from rich.console import Console

if TYPE_CHECKING:
    from shared.contract.topics import TopicSpec

ROOT: Final = Path(__file__).resolve().parents[2]
LOCAL: Final = ROOT / ".local"
KAFKA_POM: Final = Path(__file__).resolve().parent / "kafka" / "pom.xml"
KAFKA_LOG4J: Final = Path(__file__).resolve().parent / "kafka" / "log4j.properties"

SERVICES: Final = ("intake", "matching", "notify", "reporting")
COMPONENTS: Final = ("postgres", "kafka", "smtp", "services")
STOP_ORDER: Final = ("services", "smtp", "kafka", "postgres")

# Port roles, the variable that overrides each, and the defaults per instance (others get dev's).
PORT_VARS: Final = {
    "postgres": "HUBNET_PG_PORT",
    "kafka": "HUBNET_KAFKA_PORT",
    "kafka_controller": "HUBNET_KAFKA_CONTROLLER_PORT",
    "smtp": "HUBNET_SMTP_PORT",
    "intake": "HUBNET_INTAKE_PORT",
    "matching": "HUBNET_MATCHING_PORT",
    "notify": "HUBNET_NOTIFY_PORT",
    "reporting": "HUBNET_REPORTING_PORT",
}
DEFAULT_PORTS: Final[Mapping[str, Mapping[str, int]]] = {
    "dev": {
        "postgres": 15432,
        "kafka": 19092,
        "kafka_controller": 19093,
        "smtp": 8025,
        "intake": 8001,
        "matching": 8002,
        "notify": 8003,
        "reporting": 8004,
    },
    "test": {
        "postgres": 25432,
        "kafka": 29092,
        "kafka_controller": 29093,
        "smtp": 28025,
        "intake": 28001,
        "matching": 28002,
        "notify": 28003,
        "reporting": 28004,
    },
}

HOST: Final = "127.0.0.1"
DB_USER: Final = "hubnet"
DB_PASSWORD: Final = "hubnet"
DB_NAME: Final = "hubnet"

# Bounds, in seconds.
POSTGRES_START_TIMEOUT: Final = 60.0
KAFKA_START_TIMEOUT: Final = 120.0
SMTP_START_TIMEOUT: Final = 20.0
SERVICE_START_TIMEOUT: Final = 60.0
MIGRATE_TIMEOUT: Final = 180.0
MAVEN_TIMEOUT: Final = 900.0
STOP_TIMEOUTS: Final = {"postgres": 30.0, "kafka": 45.0, "smtp": 10.0, "service": 20.0}
KILL_TIMEOUT: Final = 10.0

_INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_default_console = Console(stderr=True, highlight=False, soft_wrap=True)


class StackError(Exception):
    """A failure to report to a person as it is: what went wrong and what to do about it."""


# --------------------------------------------------------------------------------------------
# Instances


@dataclass(frozen=True)
class Instance:
    name: str
    ports: Mapping[str, int]

    @property
    def dir(self) -> Path:
        return LOCAL / self.name

    @property
    def pgdata(self) -> Path:
        return self.dir / "pgdata"

    @property
    def pg_socket_dir(self) -> Path:
        """Inside the state dir when the socket path fits in sun_path (107 bytes), else a per-instance /tmp dir."""
        preferred = self.dir / "pgsock"
        if len(str(preferred / f".s.PGSQL.{self.ports['postgres']}.lock")) <= 100:
            return preferred
        digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"hubnet-{self.name}-{digest}"

    @property
    def kafka_dir(self) -> Path:
        return self.dir / "kafka"

    @property
    def maildir(self) -> Path:
        return self.dir / "mail"

    @property
    def logs(self) -> Path:
        return self.dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def env_file(self) -> Path:
        return self.dir / "stack.env"

    def url(self, service: str) -> str:
        return f"http://{HOST}:{self.ports[service]}"


def instance_name(name: str | None = None) -> str:
    name = name or os.environ.get("HUBNET_STACK") or "dev"
    if not _INSTANCE_NAME.fullmatch(name):
        raise StackError(f"instance name {name!r} (HUBNET_STACK) must match {_INSTANCE_NAME.pattern}")
    return name


def get_instance(name: str | None = None) -> Instance:
    """The instance named by `name` or `HUBNET_STACK`; its ports from the environment or the defaults."""
    name = instance_name(name)
    ports = dict(DEFAULT_PORTS.get(name, DEFAULT_PORTS["dev"]))
    for role, var in PORT_VARS.items():
        value = os.environ.get(var)
        if value:
            if not value.isdigit() or not 1024 <= int(value) <= 65535:
                raise StackError(f"{var}={value!r} is not a port number between 1024 and 65535")
            ports[role] = int(value)
    taken: dict[int, str] = {}
    for role, port in ports.items():
        if port in taken:
            raise StackError(f"{PORT_VARS[role]} and {PORT_VARS[taken[port]]} are both {port}")
        taken[port] = role
    return Instance(name, ports)


def env_file(name: str | None = None) -> Path:
    return LOCAL / instance_name(name) / "stack.env"


def load_env(instance: str | None = None) -> dict[str, str]:
    """The connection settings `hubnet stack up` wrote for an instance (`.local/<instance>/stack.env`)."""
    path = env_file(instance)
    if not path.exists():
        command = f"HUBNET_STACK={instance_name(instance)} hubnet stack up"
        raise StackError(f"{path} does not exist: start the stack first (`{command}`)")
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            env[key.strip()] = value.strip()
    return env


def _auth_secret(inst: Instance) -> str:
    """Generated once per instance and kept, so tokens issued earlier stay valid across restarts."""
    path = inst.dir / "auth_secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    inst.dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    return secret


def stack_env(inst: Instance) -> dict[str, str]:
    """Everything a client of this instance needs, as HUBNET_* variables."""
    ports = inst.ports
    env = {
        "HUBNET_STACK": inst.name,
        "HUBNET_DATABASE_URL": f"postgresql+asyncpg://{DB_USER}:{DB_PASSWORD}@{HOST}:{ports['postgres']}/{DB_NAME}",
        "HUBNET_KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{ports['kafka']}",
        "HUBNET_SMTP_HOST": HOST,
        "HUBNET_SMTP_PORT": str(ports["smtp"]),
        "HUBNET_MAILDIR": str(inst.maildir),
        "HUBNET_AUTH_SECRET": _auth_secret(inst),
        "HUBNET_HOST": HOST,
    }
    env.update({f"HUBNET_{service.upper()}_URL": inst.url(service) for service in SERVICES})
    env.update({var: str(ports[role]) for role, var in PORT_VARS.items()})
    return env


def write_env(inst: Instance) -> Path:
    lines = [
        f"# hubnet local stack '{inst.name}', written by `hubnet stack up`.",
        "# Clients read it; the services get it merged over their environment.",
    ]
    lines += [f"{key}={value}" for key, value in stack_env(inst).items()]
    inst.dir.mkdir(parents=True, exist_ok=True)
    partial = inst.env_file.with_suffix(".env.partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(inst.env_file)
    return inst.env_file


@contextlib.contextmanager
def _locked(inst: Instance) -> Iterator[None]:
    """One `up`/`down`/`start`/`stop` at a time per instance."""
    inst.dir.mkdir(parents=True, exist_ok=True)
    with (inst.dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _default_console.print(f"[yellow]waiting for another `hubnet stack` on '{inst.name}' to finish…[/]")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# Processes: pidfiles and process groups


@dataclass(frozen=True)
class Proc:
    pid: int
    start_time: int  # clock ticks after boot (/proc/<pid>/stat), so a reused pid is not mistaken for ours


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time) of a process, or None when there is none."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[2]), int(fields[19])


def _alive(proc: Proc) -> bool:
    info = _stat(proc.pid)
    return info is not None and info[0] != "Z" and info[2] == proc.start_time


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None and info[1] == pgid and info[0] != "Z":
                members.append(int(entry))
    return members


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process (a no-op for anyone else's)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _pidfile(inst: Instance, name: str) -> Path:
    return inst.run_dir / f"{name}.pid"


def running(inst: Instance, name: str) -> Proc | None:
    """The recorded process of a component if it still runs (stale pidfiles are ignored)."""
    try:
        pid_text, start_text = _pidfile(inst, name).read_text(encoding="utf-8").split()
        proc = Proc(int(pid_text), int(start_text))
    except (OSError, ValueError):
        return None
    _reap(proc.pid)
    return proc if _alive(proc) else None


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in content[-lines:])


def _spawn(
    inst: Instance,
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    user: pwd.struct_passwd | None = None,
) -> Proc:
    """Start a long-running process in a new session (its own process group) and record it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    inst.run_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} hubnet stack: {shlex.join(argv)}\n".encode())
        handle.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    info = _stat(process.pid)
    proc = Proc(process.pid, info[2] if info else 0)
    _pidfile(inst, name).write_text(f"{proc.pid} {proc.start_time}\n", encoding="utf-8")
    return proc


def _stop_all(inst: Instance, names: Sequence[str], *, sig: signal.Signals, timeout: float, console: Console) -> None:
    """Signal each recorded process; wait until its whole group is gone; SIGKILL the group after `timeout`."""
    targets: dict[str, Proc] = {}
    for name in names:
        proc = running(inst, name)
        if proc is None:
            _pidfile(inst, name).unlink(missing_ok=True)
            continue
        targets[name] = proc
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
    if not targets:
        return

    def gone() -> bool:
        for proc in targets.values():
            _reap(proc.pid)
        return all(not _group_members(proc.pid) for proc in targets.values())

    if not _poll(gone, timeout):
        for name, proc in targets.items():
            if _group_members(proc.pid):
                console.print(f"[yellow]{name} did not stop within {timeout:.0f}s: SIGKILL[/]")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if not _poll(gone, KILL_TIMEOUT):
            left = {name: _group_members(proc.pid) for name, proc in targets.items()}
            raise StackError(f"processes survived SIGKILL: {left}")
    for name in targets:
        _pidfile(inst, name).unlink(missing_ok=True)
        console.print(f"[green]✓[/] {name} stopped")


def _poll(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _wait_healthy(
    inst: Instance,
    what: str,
    probe: Callable[[], bool],
    *,
    timeout: float,
    proc: Proc,
    log: Path,
    console: Console,
    interval: float = 0.2,
) -> None:
    """Poll `probe` until it holds; fail early when the process died, or after `timeout` seconds.

    A process that is still unhealthy at the bound is stopped, so that the next `up` starts it afresh.
    """
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {what}…"):
        while not probe():
            _reap(proc.pid)
            if not _alive(proc):
                _pidfile(inst, what).unlink(missing_ok=True)
                raise StackError(f"{what} exited while starting; the end of {log}:\n{_log_tail(log)}")
            if time.monotonic() >= deadline:
                with contextlib.suppress(StackError):
                    _stop(inst, what, console)
                raise StackError(
                    f"{what} was not healthy after {timeout:.0f}s and was stopped; the end of {log}:\n{_log_tail(log)}"
                )
            time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Ports


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (SO_REUSEADDR: connections in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _listener(port: int) -> str | None:
    """Best effort: which process listens on a TCP port ('pid 123: cmdline')."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text(encoding="utf-8").splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                        cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                        return f"pid {entry}: {cmdline.strip()[:120]}"
    return None


def _claim_port(inst: Instance, role: str) -> None:
    port = inst.ports[role]
    if port_free(port):
        return
    owner = _listener(port)
    var = PORT_VARS[role]
    raise StackError(
        f"port {port} for {role} of stack '{inst.name}' is already taken by "
        f"{owner or 'a process that is not part of this stack'}.\n"
        f"Stop that process, or choose another port: {var}=<free port> hubnet stack up"
    )


# --------------------------------------------------------------------------------------------
# PostgreSQL


def pg_bindir() -> Path:
    """The PostgreSQL server binaries: HUBNET_PG_BINDIR, Debian's newest /usr/lib/postgresql/*/bin, or PATH."""
    if configured := os.environ.get("HUBNET_PG_BINDIR"):
        return Path(configured)
    candidates = [path.parent for path in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if candidates:
        return max(candidates, key=lambda bindir: int(re.sub(r"\D", "", bindir.parent.name) or 0))
    if found := shutil.which("initdb"):
        return Path(found).parent
    raise StackError(
        "PostgreSQL server binaries (initdb, postgres) not found: `make install` installs Debian's package "
        "(apt-get install -y postgresql), or set HUBNET_PG_BINDIR"
    )


def _pg_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as error:
        raise StackError(
            "running as root needs a `postgres` system user to own the database cluster "
            "(Debian's postgresql package creates it)"
        ) from error


def _make_traversable(path: Path, user: pwd.struct_passwd, console: Console) -> None:
    """Every directory above the cluster must be searchable by its owner (o+x), else it cannot start."""
    for directory in reversed(path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            console.print(f"[yellow]making {directory} traversable (o+x) for the {user.pw_name} user[/]")
            directory.chmod(mode | stat.S_IXOTH)


def _own_dir(path: Path, user: pwd.struct_passwd | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


def _pg_conf(inst: Instance) -> str:
    lines = [
        "# Written by `hubnet stack` at every start; included from postgresql.conf.",
        f"listen_addresses = '{HOST}'",
        f"port = {inst.ports['postgres']}",
        f"unix_socket_directories = '{inst.pg_socket_dir}'",
        "max_connections = 200",
        "shared_buffers = 128MB",
        "logging_collector = off",
        "log_min_messages = warning",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        "timezone = 'UTC'",
    ]
    if inst.name == "test":
        lines += [
            "# The test instance trades durability for speed; never do this with data you keep.",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
        ]
    return "\n".join(lines) + "\n"


def _pg_ready(inst: Instance, bindir: Path) -> bool:
    result = subprocess.run(
        [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(inst.ports["postgres"]), "-t", "2"],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
    )
    return result.returncode == 0


def _run_checked(
    argv: Sequence[str],
    *,
    what: str,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: pwd.struct_passwd | None = None,
    stdin_text: str = "",
) -> str:
    """Run a short command to completion; its output becomes the error when it fails."""
    try:
        result = subprocess.run(
            list(argv),
            check=False,
            input=stdin_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    except subprocess.TimeoutExpired as error:
        raise StackError(f"{what} did not finish within {timeout:.0f}s") from error
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def _pg_bootstrap(inst: Instance, bindir: Path) -> None:
    """The application's role and database (idempotent); the role may create the tests' scratch databases."""
    sql = (
        f"SELECT 'CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD ''{DB_PASSWORD}''' "
        f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_USER}')\\gexec\n"
        f"SELECT 'CREATE DATABASE {DB_NAME} OWNER {DB_USER}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DB_NAME}')\\gexec\n"
    )
    argv = [str(bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(inst.pg_socket_dir)]
    argv += ["-p", str(inst.ports["postgres"]), "-U", "postgres", "-d", "postgres", "-f", "-"]
    _run_checked(argv, what="creating the hubnet role and database", timeout=60, stdin_text=sql)


def start_postgres(inst: Instance, console: Console) -> None:
    bindir = pg_bindir()
    proc = running(inst, "postgres")
    if proc is None:
        _claim_port(inst, "postgres")
        user = _pg_user()
        if user is not None:
            _make_traversable(inst.pgdata, user, console)
        _own_dir(inst.pgdata, user)
        _own_dir(inst.pg_socket_dir, user)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        if not (inst.pgdata / "PG_VERSION").exists():
            with console.status("initdb…"):
                _run_checked(
                    [
                        *(str(bindir / "initdb"), "-D", str(inst.pgdata), "-U", "postgres", "-E", "UTF8"),
                        *("--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"),
                    ],
                    what="initdb",
                    timeout=180,
                    cwd=inst.pgdata,
                    env=env,
                    user=user,
                )
            (inst.pgdata / "pg_hba.conf").write_text(
                "# hubnet local stack: the socket (in a 0700 directory) trusts; TCP on loopback needs a password.\n"
                "local all all trust\n"
                f"host all all {HOST}/32 scram-sha-256\n",
                encoding="utf-8",
            )
            with (inst.pgdata / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.write("\ninclude_if_exists = 'hubnet.conf'\n")
            console.print(f"[green]✓[/] postgres cluster initialised in {inst.pgdata}")
        conf_path = inst.pgdata / "hubnet.conf"
        conf_path.write_text(_pg_conf(inst), encoding="utf-8")
        if user is not None:
            for path in (conf_path, inst.pgdata / "pg_hba.conf"):
                os.chown(path, user.pw_uid, user.pw_gid)
        proc = _spawn(
            inst,
            "postgres",
            [str(bindir / "postgres"), "-D", str(inst.pgdata)],
            log=inst.logs / "postgres.log",
            env=env,
            cwd=inst.pgdata,
            user=user,
        )
    _wait_healthy(
        inst,
        "postgres",
        lambda: _pg_ready(inst, bindir),
        timeout=POSTGRES_START_TIMEOUT,
        proc=proc,
        log=inst.logs / "postgres.log",
        console=console,
    )
    _pg_bootstrap(inst, bindir)


# --------------------------------------------------------------------------------------------
# Kafka


def kafka_version() -> str:
    """The Kafka version pinned in deploy/local/kafka/pom.xml (<kafka.version>)."""
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    element = ET.parse(KAFKA_POM).getroot().find("m:properties/m:kafka.version", namespace)
    if element is None or not element.text:
        raise StackError(f"{KAFKA_POM} has no <kafka.version> property")
    return element.text.strip()


def kafka_libs_dir() -> Path:
    return LOCAL / "cache" / "kafka" / kafka_version() / "libs"


def ensure_kafka_libs(console: Console | None = None) -> Path:
    """Fetch the broker's jars with Maven into `.local/cache/kafka/<version>/libs` unless already there."""
    console = console or _default_console
    libs = kafka_libs_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch Kafka's jars: apt-get install -y maven")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return libs
        partial = libs.with_name(f"libs.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        with console.status(f"fetching Apache Kafka {kafka_version()} with Maven…"):
            argv = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(KAFKA_POM), "dependency:copy-dependencies"]
            argv += ["-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
            _run_checked(argv, what="mvn dependency:copy-dependencies", timeout=MAVEN_TIMEOUT)
        if not (partial / f"kafka_2.13-{kafka_version()}.jar").exists():
            raise StackError(f"Maven ran but {partial} has no kafka_2.13-{kafka_version()}.jar")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        marker.write_text(f"{kafka_version()}\n", encoding="utf-8")
        console.print(f"[green]✓[/] Kafka {kafka_version()} jars in {libs} ({time.monotonic() - started:.0f}s)")
    return libs


def java_binary() -> str:
    if java_home := os.environ.get("JAVA_HOME"):
        candidate = Path(java_home) / "bin" / "java"
        if candidate.exists():
            return str(candidate)
    if found := shutil.which("java"):
        return found
    raise StackError("Java (17 or newer) is needed for Kafka: apt-get install -y default-jre-headless")


def _kafka_properties(inst: Instance) -> str:
    port, controller = inst.ports["kafka"], inst.ports["kafka_controller"]
    return f"""# Written by `hubnet stack` at every start: one KRaft node, broker and controller, on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{controller}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}
advertised.listeners=PLAINTEXT://{HOST}:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={inst.kafka_dir / "data"}
# Topics are created explicitly (shared.contract.topics.all_topics), never by a producer's typo.
auto.create.topics.enable=false
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
log.retention.hours=168
"""


def _kafka_cluster_id(inst: Instance) -> str:
    path = inst.kafka_dir / "cluster.id"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.write_text(cluster_id + "\n", encoding="utf-8")
    return cluster_id


def _quiet_aiokafka() -> None:
    """The connection errors of a broker that is still starting are expected while polling."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def _kafka_ready_async(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="hubnet-stack")
    try:
        await asyncio.wait_for(admin.start(), 10)
        cluster = await asyncio.wait_for(admin.describe_cluster(), 10)
        return bool(cluster.get("brokers"))
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def kafka_ready(bootstrap: str) -> bool:
    _quiet_aiokafka()
    return asyncio.run(_kafka_ready_async(bootstrap))


def stack_topics() -> list[TopicSpec]:
    """The topics of the configured hubs (HUBNET_HUBS_FILE, else the built-in list)."""
    from shared.contract.topics import all_topics
    from shared.hubs import load_hubs
    from shared.settings import CommonSettings

    return all_topics(list(load_hubs(CommonSettings())))


async def create_topics(bootstrap: str, specs: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that are missing (an existing topic is left as it is); return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000, client_id="hubnet-stack")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        new_topics = [
            NewTopic(
                spec.name,
                spec.partitions,
                1,
                topic_configs={"cleanup.policy": "compact"} if spec.compacted else {},
            )
            for spec in missing
        ]
        response = await admin.create_topics(new_topics)
        created = []
        for entry in response.topic_errors:
            topic, code = entry[0], entry[1]
            if code == 0:
                created.append(topic)
            elif code != TopicAlreadyExistsError.errno:
                message = entry[2] if len(entry) > 2 else ""
                raise StackError(f"creating topic {topic} failed: {for_code(code).__name__} {message or ''}")
        return created
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, client_id="hubnet-stack")
    await admin.start()
    try:
        return sorted(await admin.list_topics())
    finally:
        await admin.close()


def ensure_topics(inst: Instance, console: Console) -> None:
    specs = stack_topics()
    _quiet_aiokafka()
    created = asyncio.run(create_topics(f"{HOST}:{inst.ports['kafka']}", specs))
    if created:
        console.print(f"[green]✓[/] created {len(created)} topics: {', '.join(sorted(created))}")
    else:
        console.print(f"[dim]  all {len(specs)} topics present[/]")


def start_kafka(inst: Instance, console: Console) -> None:
    bootstrap = f"{HOST}:{inst.ports['kafka']}"
    proc = running(inst, "kafka")
    if proc is None:
        _claim_port(inst, "kafka")
        _claim_port(inst, "kafka_controller")
        libs = ensure_kafka_libs(console)
        java = java_binary()
        inst.kafka_dir.mkdir(parents=True, exist_ok=True)
        inst.logs.mkdir(parents=True, exist_ok=True)
        properties = inst.kafka_dir / "server.properties"
        properties.write_text(_kafka_properties(inst), encoding="utf-8")
        classpath = f"{libs}/*"
        log_opts = [f"-Dlog4j.configuration=file:{KAFKA_LOG4J}", f"-Dkafka.logs.dir={inst.logs}"]
        if not (inst.kafka_dir / "data" / "meta.properties").exists():
            with console.status("formatting Kafka storage…"):
                _run_checked(
                    [
                        *(java, *log_opts, "-cp", classpath, "kafka.tools.StorageTool", "format"),
                        *("-t", _kafka_cluster_id(inst), "-c", str(properties), "--ignore-formatted"),
                    ],
                    what="kafka-storage format",
                    timeout=120,
                )
        jvm = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError"]
        jvm += ["-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true", *log_opts]
        proc = _spawn(
            inst,
            "kafka",
            [java, *jvm, "-cp", classpath, "kafka.Kafka", str(properties)],
            log=inst.logs / "kafka.out",
        )
    _wait_healthy(
        inst,
        "kafka",
        lambda: kafka_ready(bootstrap),
        timeout=KAFKA_START_TIMEOUT,
        proc=proc,
        log=inst.logs / "kafka.log",
        console=console,
        interval=0.5,
    )
    ensure_topics(inst, console)


# --------------------------------------------------------------------------------------------
# SMTP sink


def smtp_ready(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as connection:
            connection.settimeout(2)
            return connection.recv(512).startswith(b"220")
    except OSError:
        return False


def start_smtp(inst: Instance, console: Console) -> None:
    proc = running(inst, "smtp")
    if proc is None:
        _claim_port(inst, "smtp")
        for sub in ("tmp", "new", "cur"):  # a Maildir, readable (mailbox.Maildir(create=False)) before any mail
            (inst.maildir / sub).mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "aiosmtpd", "-n", "--smtputf8", "-l", f"{HOST}:{inst.ports['smtp']}"]
        argv += ["-c", "aiosmtpd.handlers.Mailbox", str(inst.maildir)]
        proc = _spawn(inst, "smtp", argv, log=inst.logs / "smtp.log")
    _wait_healthy(
        inst,
        "smtp",
        lambda: smtp_ready(inst.ports["smtp"]),
        timeout=SMTP_START_TIMEOUT,
        proc=proc,
        log=inst.logs / "smtp.log",
        console=console,
    )


# --------------------------------------------------------------------------------------------
# Services


def present_services() -> list[str]:
    return [name for name in SERVICES if (ROOT / "services" / name / "__main__.py").exists()]


def service_env(inst: Instance) -> dict[str, str]:
    """The services' environment: this stack's settings over the caller's environment."""
    from shared.contract.topics import LOCAL_STACK_PATTERN

    env = dict(os.environ)
    env.update(stack_env(inst))
    # The stack's consumers leave the scratch hubs of integration tests and benchmarks alone.
    env.setdefault("HUBNET_CONSULTATION_TOPIC_PATTERN", LOCAL_STACK_PATTERN)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def service_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_services(inst: Instance, console: Console, names: Sequence[str] = SERVICES) -> None:
    available = present_services()
    for name in names:
        if name not in available:
            console.print(f"[yellow]! services/{name}/__main__.py is missing: {name} skipped[/]")
    names = [name for name in names if name in available]
    if not names:
        return
    if running(inst, "postgres") is None or running(inst, "kafka") is None:
        raise StackError(
            f"the services need postgres and kafka of stack '{inst.name}' running: "
            "`hubnet stack up` (or include them in --only)"
        )
    to_start = []
    for name in names:
        proc = running(inst, name)
        if proc is not None and service_ready(inst.url(name)):
            console.print(f"[dim]  {name} already running (pid {proc.pid})[/]")
        elif proc is not None:
            to_start.append(name)  # running but not ready: wait for it below
        else:
            _claim_port(inst, name)
            to_start.append(name)
    if not to_start:
        return
    env = service_env(inst)
    fresh = [name for name in to_start if running(inst, name) is None]
    _migrate(inst, fresh, env, console)
    procs: dict[str, Proc] = {}
    for name in to_start:
        existing = running(inst, name)
        procs[name] = existing or _spawn(
            inst,
            name,
            [sys.executable, "-m", f"services.{name}", "serve"],
            log=inst.logs / f"{name}.log",
            env=env,
        )
    for name, proc in procs.items():
        _wait_healthy(
            inst,
            name,
            functools.partial(service_ready, inst.url(name)),
            timeout=SERVICE_START_TIMEOUT,
            proc=proc,
            log=inst.logs / f"{name}.log",
            console=console,
        )
        console.print(f"[green]✓[/] {name} ready at {inst.url(name)} (pid {proc.pid})")


def _migrate(inst: Instance, names: Sequence[str], env: Mapping[str, str], console: Console) -> None:
    """`python -m services.<name> migrate` for each, side by side (migrations are safe to run concurrently)."""
    if not names:
        return
    inst.logs.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with console.status(f"migrating {', '.join(names)}…"):
        for name in names:
            log = inst.logs / f"{name}.log"
            with log.open("ab") as handle:
                handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} hubnet stack: migrate\n".encode())
                handle.flush()
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}", "migrate"],
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=dict(env),
                    cwd=ROOT,
                )
        deadline = time.monotonic() + MIGRATE_TIMEOUT
        failed = []
        for name, process in processes.items():
            try:
                code = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                code = -1
            if code != 0:
                failed.append(name)
    if failed:
        logs = {name: inst.logs / f"{name}.log" for name in failed}
        details = "\n".join(f"{name} (end of {log}):\n{_log_tail(log)}" for name, log in logs.items())
        raise StackError(f"migrations failed for {', '.join(failed)}\n{details}")
    console.print(f"[green]✓[/] migrated {', '.join(names)}")


# --------------------------------------------------------------------------------------------
# The stack as a whole


def parse_components(only: str | Iterable[str] | None) -> list[str]:
    """`postgres,kafka` → the components in start order; None or empty → all of them."""
    if only is None:
        return list(COMPONENTS)
    names = [part.strip() for part in (only.split(",") if isinstance(only, str) else only) if part.strip()]
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    return [name for name in COMPONENTS if name in names] or list(COMPONENTS)


def _start(inst: Instance, component: str, console: Console) -> None:
    started = time.monotonic()
    if component == "postgres":
        start_postgres(inst, console)
        where = f"{HOST}:{inst.ports['postgres']}"
    elif component == "kafka":
        start_kafka(inst, console)
        where = f"{HOST}:{inst.ports['kafka']}"
    elif component == "smtp":
        start_smtp(inst, console)
        where = f"{HOST}:{inst.ports['smtp']} → {inst.maildir}"
    elif component in SERVICES:
        start_services(inst, console, [component])
        return
    else:
        start_services(inst, console)
        return
    console.print(f"[green]✓[/] {component} ready on {where} ({time.monotonic() - started:.1f}s)")


def _stop(inst: Instance, component: str, console: Console) -> None:
    if component == "services":
        _stop_all(inst, SERVICES, sig=signal.SIGTERM, timeout=STOP_TIMEOUTS["service"], console=console)
    elif component in SERVICES:
        _stop_all(inst, [component], sig=signal.SIGTERM, timeout=STOP_TIMEOUTS["service"], console=console)
    elif component == "postgres":
        # SIGINT is PostgreSQL's fast shutdown: open sessions are ended, not waited for.
        _stop_all(inst, ["postgres"], sig=signal.SIGINT, timeout=STOP_TIMEOUTS["postgres"], console=console)
    else:
        _stop_all(inst, [component], sig=signal.SIGTERM, timeout=STOP_TIMEOUTS[component], console=console)


def up(only: str | Iterable[str] | None = None, *, name: str | None = None, console: Console | None = None) -> Instance:
    """Start the chosen components (all by default) in order; what already runs healthy is left alone."""
    console = console or _default_console
    components = parse_components(only)
    inst = get_instance(name)
    started = time.monotonic()
    with _locked(inst):
        write_env(inst)
        for component in components:
            _start(inst, component, console)
    console.print(
        f"[bold green]stack '{inst.name}' up[/] ({', '.join(components)}) in {time.monotonic() - started:.1f}s; "
        f"settings in {inst.env_file}"
    )
    return inst


def down(*, name: str | None = None, console: Console | None = None) -> Instance:
    """Stop services, smtp, kafka, postgres, in that order; data stays for the next `up`."""
    console = console or _default_console
    inst = get_instance(name)
    with _locked(inst):
        for component in STOP_ORDER:
            _stop(inst, component, console)
    console.print(f"[bold]stack '{inst.name}' down[/]")
    return inst


def start_component(component: str, *, name: str | None = None, console: Console | None = None) -> Instance:
    console = console or _default_console
    if component not in COMPONENTS and component not in SERVICES:
        raise StackError(f"unknown component {component!r}; choose from {', '.join(COMPONENTS + SERVICES)}")
    inst = get_instance(name)
    with _locked(inst):
        write_env(inst)
        _start(inst, component, console)
    return inst


def stop_component(component: str, *, name: str | None = None, console: Console | None = None) -> Instance:
    console = console or _default_console
    if component not in COMPONENTS and component not in SERVICES:
        raise StackError(f"unknown component {component!r}; choose from {', '.join(COMPONENTS + SERVICES)}")
    inst = get_instance(name)
    with _locked(inst):
        _stop(inst, component, console)
    return inst


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # "running", "stopped", "unhealthy" (its process runs but does not answer)
    pid: int | None
    endpoint: str


def status(*, name: str | None = None) -> list[ComponentStatus]:
    inst = get_instance(name)
    probes: dict[str, tuple[str, Callable[[], bool]]] = {
        "postgres": (f"{HOST}:{inst.ports['postgres']}", lambda: _pg_ready(inst, pg_bindir())),
        "kafka": (f"{HOST}:{inst.ports['kafka']}", lambda: kafka_ready(f"{HOST}:{inst.ports['kafka']}")),
        "smtp": (f"{HOST}:{inst.ports['smtp']}", lambda: smtp_ready(inst.ports["smtp"])),
    }
    for service in SERVICES:
        url = inst.url(service)
        probes[service] = (url, functools.partial(service_ready, url))
    result = []
    for component, (endpoint, probe) in probes.items():
        proc = running(inst, component)
        if proc is None:
            state = "stopped"
        else:
            try:
                state = "running" if probe() else "unhealthy"
            except StackError:
                state = "unhealthy"
        result.append(ComponentStatus(component, state, proc.pid if proc else None, endpoint))
    return result
