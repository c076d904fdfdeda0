"""Every SQL statement of notify."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Row, Table, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import domain, tables
from shared import db
from shared.contract.vocabulary import Language

_DELIVERIES = f"{tables.metadata.schema}.{tables.Delivery.__tablename__}"

# Due: pending and its time has come, or sending whose lease lapsed (its sender died mid-send).
# The claim commits `sending` before any SMTP traffic: that is what bounds duplicates to crashes.
_CLAIM = text(
    f"""
    UPDATE {_DELIVERIES} d SET status = 'sending', attempts = d.attempts + 1,
        next_attempt_at = now() + make_interval(secs => :lease)
    FROM (
        SELECT id FROM {_DELIVERIES}
        WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) due
    WHERE d.id = due.id
    RETURNING d.*
    """
)


# Built once, on the table itself: an ORM-enabled UPDATE would be composed and checked against the
# session's objects on every call, and cost more than running it.
_DELIVERY = cast(Table, tables.Delivery.__table__)
_UPDATE = update(_DELIVERY).where(_DELIVERY.c.id == bindparam("delivery_id"))
_SENT = _UPDATE.values(status=domain.DeliveryStatus.SENT.value, sent_at=bindparam("at"), last_error=None)
_RETRY = _UPDATE.values(
    status=domain.DeliveryStatus.PENDING.value, next_attempt_at=bindparam("at"), last_error=bindparam("error")
)
_FAILED = _UPDATE.values(
    status=domain.DeliveryStatus.FAILED.value, failed_at=bindparam("at"), last_error=bindparam("error")
)
_SUPPRESSED = _UPDATE.values(status=domain.DeliveryStatus.SUPPRESSED.value)


async def save_all(session: AsyncSession, deliveries: Sequence[domain.Delivery], *, deadline: timedelta) -> None:
    await db.insert_rows(
        session,
        tables.Delivery.__table__,
        [
            {
                "id": d.id,
                "hub": d.hub,
                "consultation_id": d.consultation_id,
                "cause_event_id": d.cause_event_id,
                "correlation_id": d.correlation_id,
                "template": d.template,
                "language": d.language.value,
                "recipient": d.recipient,
                "subject": d.subject,
                "body": d.body,
                "status": domain.DeliveryStatus.PENDING.value,
                "deadline_at": datetime.now(UTC) + deadline,
            }
            for d in deliveries
        ],
        conflict=("cause_event_id", "template"),
    )


async def recent_deliveries(
    session: AsyncSession, claimed: Sequence[domain.Delivery], *, template: str, since: datetime
) -> dict[str, int]:
    """For each recipient of `claimed`, the messages of `template` to them since `since`, sent or being
    sent, outside `claimed`: one grouped count for a whole claim."""
    table = tables.Delivery
    rows = await session.execute(
        select(table.recipient, func.count())
        .where(
            table.recipient.in_({d.recipient for d in claimed}),
            table.created_at >= since,
            table.template == template,
            table.status.in_([domain.DeliveryStatus.SENT.value, domain.DeliveryStatus.SENDING.value]),
            table.id.not_in([d.id for d in claimed]),
        )
        .group_by(table.recipient)
    )
    return {recipient: int(count) for recipient, count in rows}


async def mark_suppressed(session: AsyncSession, delivery: domain.Delivery) -> None:
    await session.execute(_SUPPRESSED, {"delivery_id": delivery.id})


def _to_domain(row: Row[tuple[object, ...]]) -> domain.Delivery:
    m = row._mapping
    return domain.Delivery(
        id=m["id"],
        hub=m["hub"],
        consultation_id=m["consultation_id"],
        cause_event_id=m["cause_event_id"],
        correlation_id=m["correlation_id"],
        template=m["template"],
        language=Language(m["language"]),
        recipient=m["recipient"],
        subject=m["subject"],
        body=m["body"],
        attempts=m["attempts"],
        deadline_at=m["deadline_at"],
    )


async def claim_due(session: AsyncSession, *, limit: int, lease_s: float) -> list[domain.Delivery]:
    rows = await session.execute(_CLAIM, {"limit": limit, "lease": lease_s})
    return [_to_domain(row) for row in rows]


async def mark_sent(session: AsyncSession, delivery: domain.Delivery, sent_at: datetime) -> None:
    await session.execute(_SENT, {"delivery_id": delivery.id, "at": sent_at})


async def mark_retry(session: AsyncSession, delivery: domain.Delivery, *, error: str, at: datetime) -> None:
    await session.execute(_RETRY, {"delivery_id": delivery.id, "at": at, "error": error[:1000]})


async def mark_failed(session: AsyncSession, delivery: domain.Delivery, *, error: str, at: datetime) -> None:
    await session.execute(_FAILED, {"delivery_id": delivery.id, "at": at, "error": error[:1000]})
