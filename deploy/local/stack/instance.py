"""A stack instance: its name, ports and state directory, the settings it hands to clients, its lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rich.console import Console

from shared import auth

ROOT: Final = Path(__file__).resolve().parents[3]
LOCAL: Final = ROOT / ".local"
HOST: Final = "127.0.0.1"
DB_USER: Final = "hubnet"
DB_PASSWORD: Final = "hubnet"
DB_NAME: Final = "hubnet"
SERVICES: Final = ("intake", "matching", "notify", "reporting")

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
    "gateway": "HUBNET_GATEWAY_PORT",
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
        "gateway": 8000,
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
        "gateway": 28000,
    },
}

_INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class StackError(Exception):
    """A failure to report to a person as it is: what went wrong and what to do about it."""


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

    def address(self, role: str) -> str:
        return f"{HOST}:{self.ports[role]}"

    def url(self, service: str) -> str:
        return f"http://{self.address(service)}"


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


def auth_keys(inst: Instance) -> tuple[Path, Path]:
    """The instance's staff-token key pair as PEM files (private, public).

    Generated once and kept, so that tokens issued earlier stay valid across restarts.
    """
    private, public = inst.dir / "staff-token.key", inst.dir / "staff-token.pub"
    if not private.exists():
        inst.dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(auth.private_pem(auth.PrivateKey.generate()))
        public.unlink(missing_ok=True)
    if not public.exists():
        key = auth.load_private_key(private.read_text(encoding="utf-8"), source=str(private))
        public.write_text(auth.public_pem(key.public_key()), encoding="utf-8")
    return private, public


def stack_env(inst: Instance) -> dict[str, str]:
    """Everything a client of this instance needs, as HUBNET_* variables."""
    env = {
        "HUBNET_STACK": inst.name,
        "HUBNET_DATABASE_URL": f"postgresql+asyncpg://{DB_USER}:{DB_PASSWORD}@{inst.address('postgres')}/{DB_NAME}",
        "HUBNET_KAFKA_BOOTSTRAP_SERVERS": inst.address("kafka"),
        "HUBNET_SMTP_HOST": HOST,
        "HUBNET_SMTP_PORT": str(inst.ports["smtp"]),
        "HUBNET_MAILDIR": str(inst.maildir),
        "HUBNET_HOST": HOST,
        # A developer's machine, not a deployment: the services would accept a committed placeholder key.
        "HUBNET_ENVIRONMENT": "local",
    }
    private, public = auth_keys(inst)
    env[f"{auth.PUBLIC_KEY_VAR}_FILE"] = str(public)
    env[f"{auth.PRIVATE_KEY_VAR}_FILE"] = str(private)  # for the issuers (hubnet CLI, tests), never the services
    env.update({f"HUBNET_{service.upper()}_URL": inst.url(service) for service in SERVICES})
    env["HUBNET_GATEWAY_URL"] = env["HUBNET_PUBLIC_URL"] = f"http://{inst.address('gateway')}"
    env["HUBNET_INTAKE_ATTACHMENTS_DIR"] = str(inst.dir / "attachments")
    env.update({var: str(inst.ports[role]) for role, var in PORT_VARS.items()})
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
def locked(inst: Instance, console: Console) -> Iterator[None]:
    """One `up`/`down`/`start`/`stop` at a time per instance."""
    inst.dir.mkdir(parents=True, exist_ok=True)
    with (inst.dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"[yellow]waiting for another `hubnet stack` on '{inst.name}' to finish…[/]")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


def claim_ports(inst: Instance, *roles: str) -> None:
    """Fail, naming the squatter and the variable to change, when a port this instance needs is taken."""
    for role in roles:
        port = inst.ports[role]
        if port_free(port):
            continue
        owner = _listener(port)
        raise StackError(
            f"port {port} for {role} of stack '{inst.name}' is already taken by "
            f"{owner or 'a process that is not part of this stack'}.\n"
            f"Stop that process, or choose another port: {PORT_VARS[role]}=<free port> hubnet stack up"
        )
