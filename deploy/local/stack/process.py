"""The stack's processes: own sessions, pidfiles, bounded health polling, stopping by process group."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from rich.console import Console

from deploy.local.stack.instance import ROOT, Instance, StackError, claim_ports

KILL_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Proc:
    pid: int
    start_time: int  # clock ticks after boot (/proc/<pid>/stat), so a reused pid is not mistaken for ours


@dataclass(frozen=True)
class Shutdown:
    """How a component's processes are asked to stop, and how long they get before SIGKILL."""

    signal: signal.Signals
    timeout: float


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


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        content = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in content[-lines:])


@contextlib.contextmanager
def appending(log: Path, what: str) -> Iterator[BinaryIO]:
    """A process's log, opened for appending, with a line saying what starts writing to it and when."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} hubnet stack: {what}\n".encode())
        handle.flush()
        yield handle


def spawn(
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
    inst.run_dir.mkdir(parents=True, exist_ok=True)
    with appending(log, shlex.join(argv)) as handle:
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


def run_checked(
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


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop(inst: Instance, names: Sequence[str], shutdown: Shutdown, console: Console) -> None:
    """Signal each recorded process; wait until its whole group is gone; SIGKILL the group after the bound."""
    targets: dict[str, Proc] = {}
    for name in names:
        proc = running(inst, name)
        if proc is None:
            _pidfile(inst, name).unlink(missing_ok=True)
            continue
        targets[name] = proc
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, shutdown.signal)
    if not targets:
        return

    def gone() -> bool:
        for proc in targets.values():
            _reap(proc.pid)
        return all(not _group_members(proc.pid) for proc in targets.values())

    if not poll(gone, shutdown.timeout):
        for name, proc in targets.items():
            if _group_members(proc.pid):
                console.print(f"[yellow]{name} did not stop within {shutdown.timeout:.0f}s: SIGKILL[/]")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if not poll(gone, KILL_TIMEOUT):
            left = {name: _group_members(proc.pid) for name, proc in targets.items()}
            raise StackError(f"processes survived SIGKILL: {left}")
    for name in targets:
        _pidfile(inst, name).unlink(missing_ok=True)
        console.print(f"[green]✓[/] {name} stopped")


def wait_healthy(
    inst: Instance,
    name: str,
    probe: Callable[[], bool],
    *,
    proc: Proc,
    timeout: float,
    shutdown: Shutdown,
    log: Path,
    console: Console,
    interval: float = 0.2,
) -> None:
    """Poll `probe` until it holds; fail early when the process died, or after `timeout` seconds.

    A process that is still unhealthy at the bound is stopped, so that the next `up` starts it afresh.
    """
    deadline = time.monotonic() + timeout
    with console.status(f"waiting for {name}…"):
        while not probe():
            _reap(proc.pid)
            if not _alive(proc):
                _pidfile(inst, name).unlink(missing_ok=True)
                raise StackError(f"{name} exited while starting; the end of {log}:\n{log_tail(log)}")
            if time.monotonic() >= deadline:
                with contextlib.suppress(StackError):
                    stop(inst, [name], shutdown, console)
                raise StackError(
                    f"{name} was not healthy after {timeout:.0f}s and was stopped; the end of {log}:\n{log_tail(log)}"
                )
            time.sleep(interval)


def _nothing(inst: Instance, console: Console) -> None:
    pass


@dataclass(frozen=True)
class Daemon:
    """A component that is one long-running process: spawned unless it runs already, then polled until healthy."""

    name: str
    port_roles: tuple[str, ...]  # the first is where clients connect
    shutdown: Shutdown
    start_timeout: float
    launch: Callable[[Instance, Console], Proc]  # any first-use setup, then `spawn`
    probe: Callable[[Instance], bool]
    log: str  # the file under the instance's logs/ that explains a failed start
    after_ready: Callable[[Instance, Console], None] = _nothing
    poll_interval: float = 0.2

    @property
    def processes(self) -> tuple[str, ...]:
        return (self.name,)

    def endpoint(self, inst: Instance, name: str) -> str:
        return inst.address(self.port_roles[0])

    def ready(self, inst: Instance, name: str) -> bool:
        return self.probe(inst)

    def start(self, inst: Instance, console: Console, names: Sequence[str]) -> None:
        started = time.monotonic()
        proc = running(inst, self.name)
        if proc is None:
            claim_ports(inst, *self.port_roles)
            proc = self.launch(inst, console)
        wait_healthy(
            inst,
            self.name,
            functools.partial(self.probe, inst),
            proc=proc,
            timeout=self.start_timeout,
            shutdown=self.shutdown,
            log=inst.logs / self.log,
            console=console,
            interval=self.poll_interval,
        )
        self.after_ready(inst, console)
        elapsed = time.monotonic() - started
        console.print(f"[green]✓[/] {self.name} ready on {self.endpoint(inst, self.name)} ({elapsed:.1f}s)")
