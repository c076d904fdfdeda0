"""Reporting's projections: one use case per event type. Each runs inside the caller's transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, repository
from shared.contract import Envelope, Event
from shared.contract.consultation import (
    ConsultationSubmitted,
    ConsultationWithdrawn,
    MatchProposed,
    NotificationSent,
)


async def _project(
    session: AsyncSession, envelope: Envelope, consultation_id: uuid.UUID, status: domain.Status, **values: object
) -> None:
    current = await repository.get_status_for_update(session, consultation_id)
    await repository.save_view(
        session, consultation_id, envelope.hub, status=domain.advance(current, status).value, **values
    )
    await repository.add_to_timeline(session, envelope, consultation_id)


async def record_submission(session: AsyncSession, event: Event[ConsultationSubmitted]) -> None:
    data = event.data
    await _project(
        session,
        event.envelope,
        data.consultation_id,
        domain.Status.SUBMITTED,
        submitted_at=data.submitted_at,
        language=data.language.value,
        channel=data.channel.value,
        applicant_kind=data.applicant_kind.value,
        organization=data.organization,
        title=data.title,
        product_kind=data.product_kind.value,
        development_stage=data.development_stage.value,
        topics=[t.value for t in data.topics],
        contact_name=data.personal.contact_name,
        email=str(data.personal.email),
        body=data.personal.body,
    )


async def record_match_proposal(session: AsyncSession, event: Event[MatchProposed]) -> None:
    data = event.data
    await _project(
        session,
        event.envelope,
        data.consultation_id,
        domain.Status.SCREENING,
        match_candidates=[c.model_dump(mode="json") for c in data.candidates],
        match_proposed_at=data.proposed_at,
    )


async def record_notification(session: AsyncSession, event: Event[NotificationSent]) -> None:
    data = event.data
    current = await repository.get_status_for_update(session, data.consultation_id)
    values: dict[str, object] = {}
    if data.template == "consultation.acknowledged":
        values["acknowledged_at"] = data.sent_at
    await repository.save_view(
        session,
        data.consultation_id,
        event.envelope.hub,
        status=(current or domain.Status.SUBMITTED).value,
        **values,
    )
    await repository.add_to_timeline(session, event.envelope, data.consultation_id)


async def record_withdrawal(session: AsyncSession, event: Event[ConsultationWithdrawn]) -> None:
    data = event.data
    await _project(
        session, event.envelope, data.consultation_id, domain.Status.WITHDRAWN, withdrawn_at=data.withdrawn_at
    )
