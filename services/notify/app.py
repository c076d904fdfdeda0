"""Notify's composition root."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging

from fastapi import FastAPI

from services.notify import handlers, tables
from services.notify.mailer import Mailer
from services.notify.settings import NotifySettings
from services.notify.templates import Templates
from shared.contract.consultation import ConsultationSubmitted
from shared.hubs import load_hubs
from shared.kafka import Subscription
from shared.service import Runtime, create_http_app, create_runtime

GROUP = "hubnet.notify"

log = logging.getLogger(__name__)


def create_app(settings: NotifySettings) -> FastAPI:
    runtime = create_runtime("notify", settings, tables.metadata)
    due = asyncio.Event()
    acknowledge = functools.partial(handlers.acknowledge_consultation, templates=Templates(), hubs=load_hubs(settings))
    runtime.subscribe(Subscription(GROUP, {ConsultationSubmitted: acknowledge}), after_commit=due.set)
    runtime.workers.append(functools.partial(deliver_forever, runtime, settings, Mailer(settings), due))
    return create_http_app(runtime, title="hubnet notify", description="Emails and webhooks, in Japanese and English.")


async def deliver_forever(runtime: Runtime, settings: NotifySettings, mailer: Mailer, due: asyncio.Event) -> None:
    """The delivery loop: one transaction per delivery; woken by new deliveries, polling for retries."""
    while True:
        try:
            async with runtime.sessions.begin() as session:
                delivered = await handlers.deliver_next(session, mailer, max_attempts=settings.delivery_max_attempts)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("delivery loop failed; retrying", exc_info=True)
            delivered = False
        if delivered:
            runtime.relay.wake()
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(due.wait(), timeout=settings.delivery_poll_interval_s)
        due.clear()
