"""Every SQL statement of notify."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import domain, tables
from shared.contract.vocabulary import Language


async def save(session: AsyncSession, delivery: domain.Delivery) -> None:
    await session.execute(
        insert(tables.Delivery)
        .values(
            id=delivery.id,
            hub=delivery.hub,
            consultation_id=delivery.consultation_id,
            cause_event_id=delivery.cause_event_id,
            correlation_id=delivery.correlation_id,
            template=delivery.template,
            language=delivery.language.value,
            recipient=delivery.recipient,
            subject=delivery.subject,
            body=delivery.body,
            status=domain.DeliveryStatus.PENDING.value,
            attempts=0,
        )
        .on_conflict_do_nothing(constraint="uq_deliveries_cause_template")
    )


async def get_next_due(session: AsyncSession) -> domain.Delivery | None:
    """Lock one due delivery; replicas skip each other's."""
    row = await session.scalar(
        select(tables.Delivery)
        .where(
            tables.Delivery.status == domain.DeliveryStatus.PENDING.value, tables.Delivery.next_attempt_at <= func.now()
        )
        .order_by(tables.Delivery.next_attempt_at)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if row is None:
        return None
    return domain.Delivery(
        id=row.id,
        hub=row.hub,
        consultation_id=row.consultation_id,
        cause_event_id=row.cause_event_id,
        correlation_id=row.correlation_id,
        template=row.template,
        language=Language(row.language),
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        attempts=row.attempts,
    )


async def mark_sent(session: AsyncSession, delivery: domain.Delivery, sent_at: datetime) -> None:
    await session.execute(
        update(tables.Delivery)
        .where(tables.Delivery.id == delivery.id)
        .values(
            status=domain.DeliveryStatus.SENT.value, sent_at=sent_at, attempts=delivery.attempts + 1, last_error=None
        )
    )


async def mark_failed_attempt(
    session: AsyncSession, delivery: domain.Delivery, *, error: str, retry_at: datetime | None
) -> None:
    status = domain.DeliveryStatus.PENDING if retry_at is not None else domain.DeliveryStatus.FAILED
    values: dict[str, object] = {"status": status.value, "attempts": delivery.attempts + 1, "last_error": error[:2000]}
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    await session.execute(update(tables.Delivery).where(tables.Delivery.id == delivery.id).values(**values))
