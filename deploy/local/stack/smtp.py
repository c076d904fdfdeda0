"""The SMTP sink: aiosmtpd storing every message in the instance's Maildir, where tests and people read it."""

from __future__ import annotations

import signal
import socket
import sys

from rich.console import Console

from deploy.local.stack import process
from deploy.local.stack.instance import HOST, Instance


def _ready(inst: Instance) -> bool:
    try:
        with socket.create_connection((HOST, inst.ports["smtp"]), timeout=2) as connection:
            connection.settimeout(2)
            return connection.recv(512).startswith(b"220")
    except OSError:
        return False


def _launch(inst: Instance, console: Console) -> process.Proc:
    for sub in ("tmp", "new", "cur"):  # a Maildir, readable (mailbox.Maildir(create=False)) before any mail
        (inst.maildir / sub).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "--smtputf8", "-l", inst.address("smtp")]
    argv += ["-c", "aiosmtpd.handlers.Mailbox", str(inst.maildir)]
    return process.spawn(inst, "smtp", argv, log=inst.logs / "smtp.log")


def _where(inst: Instance, console: Console) -> None:
    console.print(f"[dim]  mail received on {inst.address('smtp')} is stored in {inst.maildir}[/]")


component = process.Daemon(
    name="smtp",
    port_roles=("smtp",),
    shutdown=process.Shutdown(signal.SIGTERM, 10.0),
    start_timeout=20.0,
    launch=_launch,
    probe=_ready,
    log="smtp.log",
    after_ready=_where,
)
