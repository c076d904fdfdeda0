"""Notify's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import domain, repository, tables
from services.notify.mailer import Mailer
from services.notify.templates import Templates
from shared import outbox
from shared.contract import Event, new_envelope
from shared.contract.consultation import ConsultationSubmitted, NotificationSent
from shared.contract.topics import consultations
from shared.hubs import Hub

SOURCE = "/hubnet/notify"

log = logging.getLogger(__name__)


async def acknowledge_consultation(
    session: AsyncSession, event: Event[ConsultationSubmitted], *, templates: Templates, hubs: dict[str, Hub]
) -> None:
    """Queue the acknowledgement to the applicant, in the consultation's language."""
    submitted = event.data
    language = submitted.language
    hub = hubs.get(submitted.hub)
    hub_name = (hub.name_ja if language.value == "ja" else hub.name_en) if hub else submitted.hub
    rendered = templates.render(
        domain.ACKNOWLEDGEMENT,
        language,
        hub_name=hub_name,
        reference=str(submitted.consultation_id)[:8].upper(),
        contact_name=submitted.personal.contact_name,
        title=submitted.title,
        organization=submitted.organization,
        topics=submitted.topics,
    )
    await repository.save(
        session,
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
        ),
    )


async def deliver_next(session: AsyncSession, mailer: Mailer, *, max_attempts: int) -> bool:
    """Send the next due delivery, if any; on success stage `NotificationSent` with it."""
    delivery = await repository.get_next_due(session)
    if delivery is None:
        return False
    now = datetime.now(UTC)
    try:
        await mailer.send(delivery)
    except Exception as error:  # every SMTP or network failure is retried later
        attempts = delivery.attempts + 1
        retry_at = None if domain.gives_up(attempts, max_attempts) else now + domain.retry_delay(attempts)
        log.warning("delivery %s failed (attempt %d): %s", delivery.id, attempts, error)
        await repository.mark_failed_attempt(
            session, delivery, error=f"{type(error).__name__}: {error}", retry_at=retry_at
        )
        return True
    await repository.mark_sent(session, delivery, now)
    sent = NotificationSent(
        consultation_id=delivery.consultation_id,
        notification_id=delivery.id,
        sent_at=now,
        channel="email",
        template=delivery.template,
        recipient_role="applicant",
        language=delivery.language,
    )
    envelope = new_envelope(
        sent,
        source=SOURCE,
        hub=delivery.hub,
        subject=str(delivery.consultation_id),
        correlation_id=delivery.correlation_id,
    )
    await outbox.add(session, tables.outbox_table, envelope, topic=consultations(delivery.hub))
    return True
