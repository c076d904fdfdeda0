"""`hubnet`: the local stack (`hubnet stack …`) and the demo (`hubnet run`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from deploy.local import stack
from deploy.local.stack import StackError, gateway
from shared import auth

if TYPE_CHECKING:
    from deploy.local.seed import SeedReport

app = typer.Typer(help="hubnet's local tooling.", no_args_is_help=True, add_completion=False)
stack_app = typer.Typer(
    help="The local stack (PostgreSQL, Kafka, SMTP sink, services) of instance HUBNET_STACK (default: dev).",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")
reporting_app = typer.Typer(help="Reporting's read models on the local stack.", no_args_is_help=True)
app.add_typer(reporting_app, name="reporting")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

COMPONENT_HELP = "postgres, kafka, smtp, services, or one service (intake, matching, notify, reporting)"


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """A StackError (or a refused key) ends the command with its message and exit code 1, not a traceback."""
    try:
        yield
    except (StackError, auth.KeyRefused) as error:
        err.print(f"[bold red]✗[/] {escape(str(error))}")
        raise typer.Exit(1) from None


@stack_app.command("up")
def stack_up(
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated components: postgres,kafka,smtp,services.")
    ] = None,
) -> None:
    """Start the stack (or some components); what already runs healthy is left alone."""
    with _reported():
        stack.up(only, console=err)


@stack_app.command("down")
def stack_down() -> None:
    """Stop gateway, services, smtp, kafka, postgres (in that order); the data stays."""
    with _reported():
        stack.down(console=err)


@stack_app.command("status")
def stack_status() -> None:
    """Each component's process and health."""
    with _reported():
        inst = stack.get_instance()
        table = Table(title=f"stack '{inst.name}' ({inst.dir})", title_justify="left")
        for column in ("component", "state", "pid", "endpoint"):
            table.add_column(column)
        colours = {"running": "green", "unhealthy": "red", "stopped": "dim"}
        for item in stack.status():
            state = f"[{colours[item.state]}]{item.state}[/]"
            table.add_row(item.name, state, str(item.pid or ""), item.endpoint)
        out.print(table)


@stack_app.command("start-component")
def stack_start_component(component: Annotated[str, typer.Argument(help=COMPONENT_HELP)]) -> None:
    """Start one component (used by the fault tests to bring Kafka back)."""
    with _reported():
        stack.start_component(component, console=err)


@stack_app.command("stop-component")
def stack_stop_component(component: Annotated[str, typer.Argument(help=COMPONENT_HELP)]) -> None:
    """Stop one component and nothing else (used by the fault tests to take Kafka away)."""
    with _reported():
        stack.stop_component(component, console=err)


@stack_app.command("env")
def stack_env(
    path_only: Annotated[bool, typer.Option("--path", help="Print only the file's path.")] = False,
) -> None:
    """The settings clients need (`.local/<instance>/stack.env`): its path, then its contents."""
    with _reported():
        path = stack.env_file()
        if path_only:
            out.print(str(path), soft_wrap=True)
            return
        stack.load_env()  # a clear error when the stack was never started
        out.print(f"# {path}", soft_wrap=True)
        out.print(escape(path.read_text(encoding="utf-8")), end="", soft_wrap=True)


@stack_app.command("topics")
def stack_topics() -> None:
    """The broker's topics (via the Kafka admin API)."""
    with _reported():
        bootstrap = stack.load_env()["HUBNET_KAFKA_BOOTSTRAP_SERVERS"]
        try:
            topics = asyncio.run(stack.list_topics(bootstrap))
        except Exception as error:
            raise StackError(f"cannot list topics on {bootstrap}: {error!r}") from error
        for topic in topics:
            out.print(topic)


@stack_app.command("gateway-config")
def stack_gateway_config() -> None:
    """Regenerate the gateway's files for Compose and Kubernetes: nginx.conf from the routes the local
    gateway uses, openapi.json from the services' own documents."""
    for directory in gateway.CLUSTER_DIRS:
        for name, content in gateway.cluster_files(directory).items():
            (directory / name).write_text(content, encoding="utf-8")
            err.print(f"wrote {directory / name}")


@stack_app.command("prepare")
def stack_prepare() -> None:
    """Fetch Kafka's jars (Maven) and check that PostgreSQL and Java are there; `make install` runs this."""
    with _reported():
        libs = stack.ensure_kafka_libs(err)
        err.print(f"Kafka {stack.kafka_version()}: {libs}")
        err.print(f"PostgreSQL: {stack.pg_bindir()}")
        err.print(f"Java: {stack.java_binary()}")


@reporting_app.command("rebuild")
def reporting_rebuild(
    check: Annotated[
        bool, typer.Option("--check", help="Build a shadow and compare it with the live views; no swap.")
    ] = False,
    keep_old: Annotated[
        bool, typer.Option("--keep-old", help="Keep the replaced schema (renamed) after the swap.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Replay with this many processes (default: by the log's size, at most one per core).",
        ),
    ] = None,
) -> None:
    """Replay every hub topic into a shadow schema while the live views serve, then swap atomically
    (`python -m services.reporting rebuild`, with the stack instance's settings)."""
    with _reported():
        env = {**os.environ, **stack.load_env()}
    args = [
        sys.executable,
        "-m",
        "services.reporting",
        "rebuild",
        *(["--check"] if check else []),
        *(["--keep-old"] if keep_old else []),
        *(["--workers", str(workers)] if workers else []),
    ]
    raise typer.Exit(subprocess.run(args, env=env, check=False).returncode)


@app.command("token")
def token(
    hub: Annotated[str, typer.Argument(help="The hub whose staff the token names, e.g. mediso.")],
    subject: Annotated[str, typer.Option(help="Who the token names.")] = "staff",
    days: Annotated[int, typer.Option(help="Days until it expires.")] = 30,
) -> None:
    """A staff token, signed with HUBNET_AUTH_PRIVATE_KEY[_FILE] if set, else with the stack instance's key."""
    with _reported():
        own = any(var in os.environ for var in (auth.PRIVATE_KEY_VAR, f"{auth.PRIVATE_KEY_VAR}_FILE"))
        key = auth.signing_key(os.environ if own else stack.load_env())
        out.print(auth.issue_staff_token(key, hub=hub, subject=subject, ttl=timedelta(days=days)), soft_wrap=True)


def _seed(inst: stack.Instance) -> SeedReport | None:
    try:
        from deploy.local.seed import seed
    except ModuleNotFoundError as error:
        if error.name != "deploy.local.seed":
            raise
        err.print("[yellow]deploy/local/seed.py is not there yet: no demo data[/]")
        return None
    with err.status("seeding demo data…"):
        return asyncio.run(seed(stack.load_env(inst.name)))


def _print_run(inst: stack.Instance, report: SeedReport | None) -> None:
    env = stack.load_env(inst.name)
    origin = f"http://{inst.address('gateway')}"
    lines = [
        f"[bold]hubnet — stack '{inst.name}'[/]",
        f"  [bold]{'open':<10} {origin}/[/]   (one origin: portal /portal/, console /console/, API /v1/)",
        "[bold]each service, directly[/]",
    ]
    for service in stack.SERVICES:
        url = inst.url(service)
        lines.append(f"  {service:<10} {url}   API docs {url}/docs   metrics {url}/metrics")
    lines += [
        f"  {'PostgreSQL':<10} postgresql://hubnet:hubnet@127.0.0.1:{inst.ports['postgres']}/hubnet",
        f"  {'Kafka':<10} {env['HUBNET_KAFKA_BOOTSTRAP_SERVERS']}",
        f"  {'SMTP sink':<10} 127.0.0.1:{inst.ports['smtp']} → Maildir {inst.maildir}",
        f"  {'settings':<10} {inst.env_file}",
        f"  {'logs':<10} {inst.logs}",
    ]
    if report is not None:
        from deploy.local.seed import DEMO_PASSWORD

        lines.append("[bold]staff tokens[/] (Authorization: Bearer <token>)")
        lines += [f"  {hub:<10} {token}" for hub, token in report.tokens.items()]
        lines.append(f"[bold]staff accounts[/] (POST {origin}/v1/staff/sessions; password {DEMO_PASSWORD})")
        lines += [f"  {hub:<10} {email:<28} {roles}" for hub, email, roles in report.accounts]
        lines.append(f"[bold]demo data[/]: {report.supporters} supporters, {len(report.consultations)} consultations")
        lines += [f"  {origin}/v1/hubs/{hub}/consultations/{cid}" for hub, cid in report.consultations]
    for line in lines:
        out.print(line, soft_wrap=True)


@app.command("run")
def run() -> None:
    """Start the whole stack, seed demo data, print URLs and tokens; Ctrl-C stops the stack."""
    with _reported():
        inst = stack.up(console=err)
    failed = False
    # Blocked before waiting: the processes are started already (they have their own sessions and masks).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        try:
            report = _seed(inst)
        except Exception as error:
            failed = True
            err.print(f"[bold red]✗ seeding failed:[/] {escape(repr(error))}")
        else:
            _print_run(inst, report)
            err.print("[bold]Ctrl-C stops the stack.[/]")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
            err.print("stopping…")
    finally:
        with _reported():
            stack.down(name=inst.name, console=err)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
