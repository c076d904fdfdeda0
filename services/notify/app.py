"""Notify's composition root: the acknowledgement consumer and the delivery worker."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import SERVICE, domain, handlers, tables
from services.notify.mailer import Mailer, describe, is_permanent
from services.notify.settings import NotifySettings
from services.notify.templates import Templates
from shared import poll
from shared.consumer import on
from shared.contract.consultation import ConsultationSubmitted
from shared.hubs import load_hubs
from shared.runtime import Runtime, create_http_app, create_runtime

log = logging.getLogger(__name__)


def create_app(settings: NotifySettings) -> FastAPI:
    runtime = create_runtime(SERVICE, settings, tables.metadata)
    due = asyncio.Event()
    acknowledge = functools.partial(
        handlers.acknowledge_consultations,
        templates=Templates(),
        hubs=load_hubs(settings),
        deadline=timedelta(seconds=settings.delivery_deadline_s),
        public_url=settings.public_url,
    )
    runtime.consume(on(ConsultationSubmitted, acknowledge), after_commit=due.set)
    if settings.delivery_sending:
        deliverer = Deliverer(runtime, settings, Mailer(settings))
        runtime.workers.append(functools.partial(deliverer.run, wake=due))
    return create_http_app(runtime, title="hubnet notify", description="Emails and webhooks, in Japanese and English.")


class Deliverer:
    """Sends due deliveries one at a time: a claim of up to `delivery_claim_size` (committed as `sending`),
    then for each in turn SMTP and its outcome, committed before the next is sent. So a crash leaves at
    most one message sent but not recorded: the one duplicate its lease allows."""

    def __init__(self, runtime: Runtime, settings: NotifySettings, mailer: Mailer) -> None:
        self._runtime = runtime
        self._settings = settings
        self._mailer = mailer
        self._deliveries = Counter(
            "hubnet_notify_deliveries_total",
            "Delivery attempts by channel and outcome (sent, retried, failed; suppressed: over the recipient limit)",
            ["channel", "outcome"],
            registry=runtime.registry,
        )
        self._given_up = Counter(
            "hubnet_notify_deliveries_given_up_total",
            "Deliveries given up (refused, or still failing at their deadline); each published DeliveryFailed",
            ["reason"],
            registry=runtime.registry,
        )

    async def run(self, *, wake: asyncio.Event) -> None:
        settings = self._settings
        try:
            await poll.poll(
                self.work,
                name="notify delivery",
                idle_s=settings.delivery_poll_interval_s,
                backoff=poll.Backoff(settings.delivery_poll_interval_s, 5.0),
                wake=wake,
            )
        finally:
            await self._mailer.close()

    async def work(self) -> bool:
        lease_s = self._settings.delivery_lease_s
        async with self._runtime.sessions.begin() as session:
            claimed = await handlers.claim_due(session, limit=self._settings.delivery_claim_size, lease_s=lease_s)
            suppressed = await handlers.suppress_over_limit(
                session, claimed, limit=self._settings.acknowledgements_per_recipient, window=timedelta(hours=1)
            )
        claimed_at = time.monotonic()
        if not claimed:
            await self._mailer.close_if_idle()
            return False
        for delivery in claimed:
            if delivery.id in suppressed:
                self._deliveries.labels("email", "suppressed").inc()
            elif time.monotonic() - claimed_at < lease_s / 2:
                # Begun within half the lease and cut off at the other half: a send never outlasts its
                # lease, so no other deliverer takes the delivery while it is on its way.
                await self._deliver(delivery, timeout_s=lease_s / 2)
            else:
                # The ones before took long: this one is left to its lease, claimed again once it lapses.
                log.warning("delivery %s not begun within half its lease; sent after the lease lapses", delivery.id)
        # Their `NotificationSent` and `DeliveryFailed` events: one relay round for the claim, not one each.
        self._runtime.wake_relay()
        return True

    async def _deliver(self, delivery: domain.Delivery, *, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._mailer.send(delivery), timeout=timeout_s)
        except Exception as error:  # every SMTP or network failure is classified below
            await self._record_failure(delivery, error)
            return
        # The message is out: recording it must not be lost to a brief database outage, or the lease
        # would lapse and the message go out again. Retry until it commits.
        await self._commit(functools.partial(handlers.record_sent, delivery=delivery), "recording a sent delivery")
        self._deliveries.labels("email", "sent").inc()

    async def _record_failure(self, delivery: domain.Delivery, error: Exception) -> None:
        permanent = is_permanent(error)
        reason = describe(error)
        log.warning("delivery %s failed (attempt %d): %s", delivery.id, delivery.attempts, reason)
        gave_up = False

        async def record(session: AsyncSession) -> None:
            nonlocal gave_up
            gave_up = await handlers.record_failure(
                session,
                delivery,
                reason=reason,
                permanent=permanent,
                retry_base=timedelta(seconds=self._settings.delivery_retry_base_s),
                retry_cap=timedelta(seconds=self._settings.delivery_retry_cap_s),
            )

        await self._commit(record, "recording a failed delivery")
        self._deliveries.labels("email", "failed" if gave_up else "retried").inc()
        if gave_up:
            self._given_up.labels("refused" if permanent else "deadline").inc()

    async def _commit(self, use_case: Callable[[AsyncSession], Awaitable[None]], what: str) -> None:
        async def attempt() -> None:
            async with self._runtime.sessions.begin() as session:
                await use_case(session)

        await poll.until_done(attempt, name=what, backoff=poll.Backoff(0.2, 5.0))
