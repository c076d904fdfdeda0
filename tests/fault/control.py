"""Faults on the running stack: components stopped and started as `hubnet stack` does it, services
SIGKILLed and started again as a supervisor restarts a crashed process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from deploy.local import stack as local_stack
from deploy.local.stack import process
from deploy.local.stack.instance import PORT_VARS, Instance
from deploy.local.stack.services import service_env
from tests.support import wait_for

HUBNET = str(Path(sys.executable).with_name("hubnet"))
START_TIMEOUT_S = 180.0
CONSOLE = Console(stderr=True, highlight=False, soft_wrap=True)  # pytest shows it when a test fails


@dataclass(frozen=True)
class StackControl:
    """The stack the tests read (`tests.support.stack_env`): its instance and ports come from its settings,
    never from defaults, so every command acts on that stack whatever the shell exports."""

    env: Mapping[str, str]

    @property
    def instance(self) -> Instance:
        return Instance(self.env["HUBNET_STACK"], {role: int(self.env[var]) for role, var in PORT_VARS.items()})

    def _command_env(self) -> dict[str, str]:
        inst = self.instance
        return {**os.environ, "HUBNET_STACK": inst.name, **{PORT_VARS[role]: str(p) for role, p in inst.ports.items()}}

    async def _hubnet(self, *args: str) -> None:
        command = await asyncio.create_subprocess_exec(HUBNET, "stack", *args, env=self._command_env())
        code = await asyncio.wait_for(command.wait(), timeout=START_TIMEOUT_S)
        assert code == 0, f"hubnet stack {' '.join(args)} failed (exit {code})"

    async def start(self, component: str) -> None:
        """`hubnet stack start-component`: started (services migrated first) and healthy on return."""
        await self._hubnet("start-component", component)

    async def up(self) -> None:
        """`hubnet stack up`: whatever is not running is started; what runs is left alone."""
        await self._hubnet("up")

    async def stop(self, component: str) -> None:
        """`hubnet stack stop-component`, run in this process so that the stop begins at once: returns
        when the component's processes are gone."""
        await asyncio.to_thread(local_stack.stop_component, component, name=self.instance.name, console=CONSOLE)

    def running(self, service: str) -> bool:
        return process.running(self.instance, service) is not None

    def spawn(self, service: str, settings: Mapping[str, str]) -> None:
        """Start a service's process without waiting for it, as a supervisor restarts one that crashed
        (no migration: the schema is there): the stack's environment for services, plus `settings`
        (`HUBNET_*` variables). Recorded in the stack's pidfile, so `hubnet stack down` stops it."""
        inst = self.instance
        assert not self.running(service), f"{service} runs already"
        argv = [sys.executable, "-m", f"services.{service}", "serve"]
        process.spawn(inst, service, argv, log=inst.logs / f"{service}.log", env={**service_env(inst), **settings})

    async def kill(self, service: str) -> None:
        """SIGKILL the service's process group; returns once the process is gone."""
        inst = self.instance
        proc = process.running(inst, service)
        assert proc is not None, f"{service} is not running"
        os.killpg(proc.pid, signal.SIGKILL)  # each stack process leads its own group

        async def gone() -> bool:
            return process.running(inst, service) is None

        await wait_for(gone, timeout=10, what=f"{service} (pid {proc.pid}) to die")

    async def ready(self, service: str, *, timeout: float) -> None:
        """Wait until the service answers /readyz (its database and Kafka reachable)."""
        url = f"{self.instance.url(service)}/readyz"

        async def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(url)).status_code == 200
            return False

        await wait_for(answers, timeout=timeout, interval=0.2, what=f"{service} ready")

    async def assert_live(self, service: str) -> None:
        """Fail when the service's /healthz says it is stalled or a worker stopped (a process that does
        not answer, e.g. starting, passes: liveness is about one that runs)."""
        with contextlib.suppress(httpx.TransportError):
            async with httpx.AsyncClient(timeout=2) as client:
                answer = await client.get(f"{self.instance.url(service)}/healthz")
            assert answer.status_code == 200, f"{service} fails liveness: {answer.text}"
