"""PostgreSQL: a cluster of the instance's own under .local/<instance>/pgdata, from the installed server binaries."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from rich.console import Console

from deploy.local.stack import process
from deploy.local.stack.instance import DB_NAME, DB_PASSWORD, DB_USER, HOST, Instance, StackError


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


def _conf(inst: Instance) -> str:
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


def _initdb(inst: Instance, bindir: Path, env: dict[str, str], user: pwd.struct_passwd | None) -> None:
    """A new cluster: the superuser `postgres` over the socket only, passwords over TCP."""
    process.run_checked(
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


def _bootstrap(inst: Instance, console: Console) -> None:
    """The application's role and database (idempotent); the role may create the tests' scratch databases."""
    sql = (
        f"SELECT 'CREATE ROLE {DB_USER} LOGIN CREATEDB PASSWORD ''{DB_PASSWORD}''' "
        f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_USER}')\\gexec\n"
        f"SELECT 'CREATE DATABASE {DB_NAME} OWNER {DB_USER}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DB_NAME}')\\gexec\n"
    )
    argv = [str(pg_bindir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(inst.pg_socket_dir)]
    argv += ["-p", str(inst.ports["postgres"]), "-U", "postgres", "-d", "postgres", "-f", "-"]
    process.run_checked(argv, what="creating the hubnet role and database", timeout=60, stdin_text=sql)


def _ready(inst: Instance) -> bool:
    argv = [str(pg_bindir() / "pg_isready"), "-q", "-h", HOST, "-p", str(inst.ports["postgres"]), "-t", "2"]
    result = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    return result.returncode == 0


def _launch(inst: Instance, console: Console) -> process.Proc:
    """A cluster of this instance's own (initialised on first use), run by `postgres` when we are root."""
    bindir = pg_bindir()
    user = _pg_user()
    if user is not None:
        _make_traversable(inst.pgdata, user, console)
    _own_dir(inst.pgdata, user)
    _own_dir(inst.pg_socket_dir, user)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    if not (inst.pgdata / "PG_VERSION").exists():
        with console.status("initdb…"):
            _initdb(inst, bindir, env, user)
        console.print(f"[green]✓[/] postgres cluster initialised in {inst.pgdata}")
    conf_path = inst.pgdata / "hubnet.conf"
    conf_path.write_text(_conf(inst), encoding="utf-8")
    if user is not None:
        for path in (conf_path, inst.pgdata / "pg_hba.conf"):
            os.chown(path, user.pw_uid, user.pw_gid)
    argv = [str(bindir / "postgres"), "-D", str(inst.pgdata)]
    return process.spawn(inst, "postgres", argv, log=inst.logs / "postgres.log", env=env, cwd=inst.pgdata, user=user)


component = process.Daemon(
    name="postgres",
    port_roles=("postgres",),
    # SIGINT is PostgreSQL's fast shutdown: open sessions are ended, not waited for.
    shutdown=process.Shutdown(signal.SIGINT, 30.0),
    start_timeout=60.0,
    launch=_launch,
    probe=_ready,
    log="postgres.log",
    after_ready=_bootstrap,
)
