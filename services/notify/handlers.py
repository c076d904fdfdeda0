"""Notify's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import domain, repository
from services.notify.templates import Templates
from shared import outbox
from shared.contract import Event
from shared.contract.consultation import ConsultationSubmitted, DeliveryFailed, NotificationSent
from shared.hubs import Hub

log = logging.getLogger(__name__)


def applicant_page(public_url: str, token: str | None) -> str | None:
    """The applicant's own page (intake's portal), from the link token intake put in the event."""
    return f"{public_url.rstrip('/')}/portal/my/{token}" if token else None


async def acknowledge_consultations(
    session: AsyncSession,
    events: Sequence[Event[ConsultationSubmitted]],
    *,
    templates: Templates,
    hubs: dict[str, Hub],
    deadline: timedelta,
    public_url: str,
) -> None:
    """Queue each applicant's acknowledgement, in the consultation's language; one insert per batch. It
    carries the reference (受付番号) and the link to the applicant's own page, when the event has them."""
    deliveries = []
    for event in events:
        submitted = event.data
        language = submitted.language
        hub = hubs.get(submitted.hub)
        hub_name = (hub.name_ja if language.value == "ja" else hub.name_en) if hub else submitted.hub
        # Nothing the submitter typed goes into the message: the form cannot be used to send anyone's
        # words (phishing) from a hub's address. The topics are labels of a fixed vocabulary.
        rendered = templates.render(
            domain.ACKNOWLEDGEMENT,
            language,
            hub_name=hub_name,
            reference=submitted.reference or str(submitted.consultation_id)[:8].upper(),
            topics=submitted.topics,
            page_url=applicant_page(public_url, submitted.personal.applicant_link_token),
        )
        deliveries.append(
            domain.Delivery(
                id=uuid.uuid4(),
                hub=submitted.hub,
                consultation_id=submitted.consultation_id,
                cause_event_id=event.envelope.id,
                correlation_id=event.envelope.correlation_id,
                template=domain.ACKNOWLEDGEMENT,
                language=language,
                recipient=str(submitted.personal.email),
                subject=rendered.subject,
                body=rendered.body,
            )
        )
    await repository.save_all(session, deliveries, deadline=deadline)


async def claim_due(session: AsyncSession, *, limit: int, lease_s: float) -> list[domain.Delivery]:
    """Take due deliveries (pending, or sending with a lapsed lease) and mark them `sending`; the
    caller commits before any message leaves."""
    return await repository.claim_due(session, limit=limit, lease_s=lease_s)


async def suppress_over_limit(
    session: AsyncSession, claimed: Sequence[domain.Delivery], *, limit: int, window: timedelta
) -> set[uuid.UUID]:
    """Acknowledgements one address was already sent (or is being sent) `limit` of within `window` are not
    sent again: marked suppressed, kept as a record. The form cannot flood a mailbox. Within one claim they
    count in claim order. Two deliverers may each let one through at once, so the bound is `limit` plus
    the number of deliverers."""
    acknowledgements = [delivery for delivery in claimed if delivery.template == domain.ACKNOWLEDGEMENT]
    if not acknowledgements:
        return set()
    since = datetime.now(UTC) - window
    counts = await repository.recent_deliveries(session, acknowledgements, template=domain.ACKNOWLEDGEMENT, since=since)
    suppressed = set()
    for delivery in acknowledgements:
        if counts.get(delivery.recipient, 0) >= limit:
            await repository.mark_suppressed(session, delivery)
            suppressed.add(delivery.id)
        else:
            counts[delivery.recipient] = counts.get(delivery.recipient, 0) + 1
    if suppressed:
        log.warning("%d acknowledgements over the per-recipient limit, suppressed", len(suppressed))
    return suppressed


async def record_sent(session: AsyncSession, delivery: domain.Delivery) -> None:
    """The message is with the SMTP server: mark it sent and tell the others."""
    now = datetime.now(UTC)
    await repository.mark_sent(session, delivery, now)
    await outbox.stage(
        session,
        NotificationSent(
            consultation_id=delivery.consultation_id,
            notification_id=delivery.id,
            sent_at=now,
            channel="email",
            template=delivery.template,
            recipient_role="applicant",
            language=delivery.language,
        ),
        hub=delivery.hub,
        correlation_id=delivery.correlation_id,
        causation_id=delivery.cause_event_id,
    )


async def record_failure(
    session: AsyncSession,
    delivery: domain.Delivery,
    *,
    reason: str,
    permanent: bool,
    retry_base: timedelta,
    retry_cap: timedelta,
) -> bool:
    """Schedule the next attempt, or give up (permanent refusal, or the deadline reached) and say so
    with `DeliveryFailed`. True when given up."""
    now = datetime.now(UTC)
    deadline = delivery.deadline_at or now
    step = domain.after_failure(
        delivery.attempts, now=now, deadline=deadline, permanent=permanent, base=retry_base, cap=retry_cap
    )
    if isinstance(step, domain.Retry):
        await repository.mark_retry(session, delivery, error=reason, at=step.at)
        return False
    await repository.mark_failed(session, delivery, error=reason, at=now)
    await outbox.stage(
        session,
        DeliveryFailed(
            consultation_id=delivery.consultation_id,
            notification_id=delivery.id,
            failed_at=now,
            channel="email",
            template=delivery.template,
            recipient_role="applicant",
            attempts=max(delivery.attempts, 1),
            permanent=step.permanent,
            reason=reason[:500],
        ),
        hub=delivery.hub,
        correlation_id=delivery.correlation_id,
        causation_id=delivery.cause_event_id,
    )
    log.error(
        "gave up delivery %s after %d attempts (%s)",
        delivery.id,
        delivery.attempts,
        "refused" if step.permanent else "deadline reached",
    )
    return True
