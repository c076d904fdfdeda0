"""The container-free local stack: PostgreSQL, Kafka (KRaft, one node), an SMTP sink and the four services.

An *instance* (`HUBNET_STACK`, default `dev`; `make test` uses `test`) keeps all its state under
`.local/<instance>/`: the database cluster, the Kafka log, received mail, logs, pidfiles and
`stack.env`, the connection settings for clients. Instances differ in their ports, so several run
side by side. Every process is started in a process group of its own and recorded in a pidfile;
stopping signals exactly those groups. Starting is idempotent, and waits for health by polling
a condition within a bound.

The components, one module each, are listed in `registry.COMPONENTS`: they start in that order and
stop in the reverse one. This module is the API the `hubnet` CLI and the tests use.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console

from deploy.local.stack import process, registry
from deploy.local.stack.instance import (
    SERVICES,
    Instance,
    StackError,
    env_file,
    get_instance,
    load_env,
    locked,
    stack_env,
    write_env,
)
from deploy.local.stack.kafka import ensure_kafka_libs, java_binary, kafka_version, list_topics
from deploy.local.stack.postgres import pg_bindir

__all__ = [
    "SERVICES",
    "ComponentStatus",
    "Instance",
    "StackError",
    "down",
    "ensure_kafka_libs",
    "env_file",
    "get_instance",
    "java_binary",
    "kafka_version",
    "list_topics",
    "load_env",
    "pg_bindir",
    "stack_env",
    "start_component",
    "status",
    "stop_component",
    "up",
]


def _console(console: Console | None) -> Console:
    return console or Console(stderr=True, highlight=False, soft_wrap=True)


def up(only: str | Iterable[str] | None = None, *, name: str | None = None, console: Console | None = None) -> Instance:
    """Start the chosen components (all by default) in order; what already runs healthy is left alone."""
    console = _console(console)
    components = registry.parse_components(only)
    inst = get_instance(name)
    started = time.monotonic()
    with locked(inst, console):
        write_env(inst)
        for component in components:
            component.start(inst, console, component.processes)
    console.print(
        f"[bold green]stack '{inst.name}' up[/] ({', '.join(component.name for component in components)}) "
        f"in {time.monotonic() - started:.1f}s; settings in {inst.env_file}"
    )
    return inst


def down(*, name: str | None = None, console: Console | None = None) -> Instance:
    """Stop the components in the reverse of their start order; data stays for the next `up`."""
    console = _console(console)
    inst = get_instance(name)
    with locked(inst, console):
        for component in reversed(registry.COMPONENTS):
            process.stop(inst, component.processes, component.shutdown, console)
    console.print(f"[bold]stack '{inst.name}' down[/]")
    return inst


def start_component(component: str, *, name: str | None = None, console: Console | None = None) -> Instance:
    """Start one component, or one process of one (`intake`)."""
    console = _console(console)
    target, processes = registry.resolve(component)
    inst = get_instance(name)
    with locked(inst, console):
        write_env(inst)
        target.start(inst, console, processes)
    return inst


def stop_component(component: str, *, name: str | None = None, console: Console | None = None) -> Instance:
    """Stop one component, or one process of one, and nothing else."""
    console = _console(console)
    target, processes = registry.resolve(component)
    inst = get_instance(name)
    with locked(inst, console):
        process.stop(inst, processes, target.shutdown, console)
    return inst


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # "running", "stopped", "unhealthy" (its process runs but does not answer)
    pid: int | None
    endpoint: str


def status(*, name: str | None = None) -> list[ComponentStatus]:
    """One row per process, in start order."""
    inst = get_instance(name)
    result = []
    for component in registry.COMPONENTS:
        for process_name in component.processes:
            proc = process.running(inst, process_name)
            if proc is None:
                state = "stopped"
            else:
                try:
                    state = "running" if component.ready(inst, process_name) else "unhealthy"
                except StackError:
                    state = "unhealthy"
            endpoint = component.endpoint(inst, process_name)
            result.append(ComponentStatus(process_name, state, proc.pid if proc else None, endpoint))
    return result
