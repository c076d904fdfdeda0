"""The four services as processes (`python -m services.<name> serve`), each migrated first and ready on /readyz."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Final

import httpx
from rich.console import Console

from deploy.local.stack import process
from deploy.local.stack.instance import ROOT, SERVICES, Instance, StackError, auth_keys, claim_ports, stack_env
from shared import auth

START_TIMEOUT: Final = 60.0
MIGRATE_TIMEOUT: Final = 180.0


def present_services() -> list[str]:
    return [name for name in SERVICES if (ROOT / "services" / name / "__main__.py").exists()]


def service_env(inst: Instance) -> dict[str, str]:
    """The services' environment: this stack's settings over the caller's environment."""
    from shared.contract.topics import LOCAL_STACK_PATTERN

    # Only the issuers of staff tokens (the hubnet CLI, the tests) hold the private key: the services get
    # the instance's public key, and no key the caller's environment may carry.
    env = {key: value for key, value in os.environ.items() if not key.startswith("HUBNET_AUTH_")}
    env.update(stack_env(inst))
    del env[f"{auth.PRIVATE_KEY_VAR}_FILE"]
    # The stack's consumers leave the scratch hubs of integration tests and benchmarks alone.
    env.setdefault("HUBNET_CONSULTATION_TOPIC_PATTERN", LOCAL_STACK_PATTERN)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


ISSUERS: Final = ("intake",)
"""The services that issue staff tokens (intake, at sign-in): they alone get the private key."""


def issuer_env(inst: Instance, name: str) -> dict[str, str]:
    if name not in ISSUERS:
        return {}
    private, _ = auth_keys(inst)
    return {f"{auth.PRIVATE_KEY_VAR}_FILE": str(private)}


def _migrate(inst: Instance, names: Sequence[str], env: Mapping[str, str], console: Console) -> None:
    """`python -m services.<name> migrate` for each, side by side (migrations are safe to run concurrently)."""
    if not names:
        return
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with console.status(f"migrating {', '.join(names)}…"):
        for name in names:
            with process.appending(inst.logs / f"{name}.log", "migrate") as handle:
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
        for name, migration in processes.items():
            try:
                code = migration.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                migration.kill()
                migration.wait()
                code = -1
            if code != 0:
                failed.append(name)
    if failed:
        logs = {name: inst.logs / f"{name}.log" for name in failed}
        details = "\n".join(f"{name} (end of {log}):\n{process.log_tail(log)}" for name, log in logs.items())
        raise StackError(f"migrations failed for {', '.join(failed)}\n{details}")
    console.print(f"[green]✓[/] migrated {', '.join(names)}")


class Services:
    name = "services"
    processes = SERVICES
    port_roles = SERVICES
    shutdown = process.Shutdown(signal.SIGTERM, 20.0)

    def endpoint(self, inst: Instance, name: str) -> str:
        return inst.url(name)

    def ready(self, inst: Instance, name: str) -> bool:
        try:
            return httpx.get(f"{inst.url(name)}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, inst: Instance, console: Console, names: Sequence[str]) -> None:
        """Migrate the services that are not running, start them side by side, then wait for each."""
        available = present_services()
        for name in names:
            if name not in available:
                console.print(f"[yellow]! services/{name}/__main__.py is missing: {name} skipped[/]")
        names = [name for name in names if name in available]
        if not names:
            return
        if process.running(inst, "postgres") is None or process.running(inst, "kafka") is None:
            raise StackError(
                f"the services need postgres and kafka of stack '{inst.name}' running: "
                "`hubnet stack up` (or include them in --only)"
            )
        to_start = []
        for name in names:
            proc = process.running(inst, name)
            if proc is not None and self.ready(inst, name):
                console.print(f"[dim]  {name} already running (pid {proc.pid})[/]")
                continue
            if proc is None:
                claim_ports(inst, name)
            to_start.append(name)  # one that runs but is not ready yet is waited for below, not started again
        if not to_start:
            return
        env = service_env(inst)
        _migrate(inst, [name for name in to_start if process.running(inst, name) is None], env, console)
        procs = {
            name: process.running(inst, name)
            or process.spawn(
                inst,
                name,
                [sys.executable, "-m", f"services.{name}", "serve"],
                log=inst.logs / f"{name}.log",
                env=env | issuer_env(inst, name),
            )
            for name in to_start
        }
        for name, proc in procs.items():
            process.wait_healthy(
                inst,
                name,
                functools.partial(self.ready, inst, name),
                proc=proc,
                timeout=START_TIMEOUT,
                shutdown=self.shutdown,
                log=inst.logs / f"{name}.log",
                console=console,
            )
            console.print(f"[green]✓[/] {name} ready at {inst.url(name)} (pid {proc.pid})")


component = Services()
