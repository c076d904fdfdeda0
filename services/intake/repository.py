"""Every SQL statement of intake."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain, tables
from shared.contract.consultation import ConsultationSubmitted


def _to_domain(row: tables.Consultation) -> domain.Consultation:
    return domain.Consultation(
        id=row.id,
        hub=row.hub,
        submitted_at=row.submitted_at,
        status=domain.Status(row.status),
        withdrawn_at=row.withdrawn_at,
    )


async def save_submitted(
    session: AsyncSession,
    submitted: ConsultationSubmitted,
    *,
    idempotency_key: str | None,
    request_sha256: str | None,
) -> None:
    personal = submitted.personal
    session.add(
        tables.Consultation(
            id=submitted.consultation_id,
            hub=submitted.hub,
            submitted_at=submitted.submitted_at,
            status=domain.Status.SUBMITTED.value,
            idempotency_key=idempotency_key,
            request_sha256=request_sha256,
            channel=submitted.channel.value,
            language=submitted.language.value,
            applicant_kind=submitted.applicant_kind.value,
            organization=submitted.organization,
            title=submitted.title,
            product_kind=submitted.product_kind.value,
            development_stage=submitted.development_stage.value,
            topics=[topic.value for topic in submitted.topics],
            consent_to_share=submitted.consent_to_share,
            contact_name=personal.contact_name,
            email=str(personal.email),
            phone=personal.phone,
            body=personal.body,
        )
    )
    await session.flush()


async def get_by_idempotency_key(session: AsyncSession, hub: str, key: str) -> tuple[uuid.UUID, str | None] | None:
    """The consultation first submitted at the hub with this key, and the SHA-256 of that request."""
    row = (
        await session.execute(
            select(tables.Consultation.id, tables.Consultation.request_sha256).where(
                tables.Consultation.hub == hub, tables.Consultation.idempotency_key == key
            )
        )
    ).one_or_none()
    return (row.id, row.request_sha256) if row is not None else None


async def get_for_update(session: AsyncSession, hub: str, consultation_id: uuid.UUID) -> domain.Consultation | None:
    row = await session.scalar(
        select(tables.Consultation)
        .where(tables.Consultation.hub == hub, tables.Consultation.id == consultation_id)
        .with_for_update()
    )
    return _to_domain(row) if row is not None else None


async def save_status(session: AsyncSession, consultation: domain.Consultation) -> None:
    await session.execute(
        update(tables.Consultation)
        .where(tables.Consultation.id == consultation.id)
        .values(status=consultation.status.value, withdrawn_at=consultation.withdrawn_at)
    )
