"""The stack's components in start order (stop order is the reverse), and the protocol each one satisfies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from rich.console import Console

from deploy.local.stack import gateway, kafka, postgres, process, services, smtp
from deploy.local.stack.instance import Instance, StackError


class Component(Protocol):
    """One part of the stack: the processes it runs (one pidfile each) and the ports they listen on."""

    @property
    def name(self) -> str: ...

    @property
    def processes(self) -> tuple[str, ...]: ...

    @property
    def port_roles(self) -> tuple[str, ...]: ...

    @property
    def shutdown(self) -> process.Shutdown: ...

    def start(self, inst: Instance, console: Console, names: Sequence[str]) -> None:
        """Start those of `names` (some of `processes`) that do not run, and wait until all of them are healthy."""

    def ready(self, inst: Instance, name: str) -> bool:
        """Process `name` answers as it should (a health probe, bounded by a short timeout)."""

    def endpoint(self, inst: Instance, name: str) -> str:
        """Where clients reach process `name`."""


COMPONENTS: Final[tuple[Component, ...]] = (
    postgres.component,
    kafka.component,
    smtp.component,
    services.component,
    gateway.component,
)
NAMES: Final = tuple(component.name for component in COMPONENTS)
PROCESSES: Final = tuple(name for component in COMPONENTS for name in component.processes)


def parse_components(only: str | Iterable[str] | None) -> list[Component]:
    """`postgres,kafka` → those components in start order; None or empty → all of them."""
    if only is None:
        return list(COMPONENTS)
    names = [part.strip() for part in (only.split(",") if isinstance(only, str) else only) if part.strip()]
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        raise StackError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [component for component in COMPONENTS if component.name in names] or list(COMPONENTS)


def resolve(name: str) -> tuple[Component, tuple[str, ...]]:
    """A component by its name (all its processes) or one of its processes by theirs (`intake`)."""
    for component in COMPONENTS:
        if name == component.name:
            return component, component.processes
        if name in component.processes:
            return component, (name,)
    choices = dict.fromkeys(NAMES + PROCESSES)
    raise StackError(f"unknown component {name!r}; choose from {', '.join(choices)}")
