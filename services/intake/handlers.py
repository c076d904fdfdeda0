"""Intake's use cases. Each runs inside the caller's transaction and never commits."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain, repository, tables
from shared import outbox
from shared.contract.consultation import (
    APPLICANT,
    Attachment,
    Consents,
    ConsentsChanged,
    ConsultationClosed,
    ConsultationEvent,
    ConsultationScreened,
    ConsultationSubmitted,
    ConsultationSupplemented,
    ConsultationWithdrawn,
    NoteAdded,
    NotePersonal,
    SupplementPersonal,
    WithdrawalReason,
)
from shared.contract.vocabulary import Outcome, OutOfScopeReason, ScreeningDecision


def new_link_token() -> str:
    """The secret of an applicant's page: 256 random bits, URL-safe. Intake keeps only its SHA-256."""
    return secrets.token_urlsafe(32)


def link_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A client's Idempotency-Key and the SHA-256 of the request it came with."""

    key: str
    request_sha256: str


class SlotTaken(Exception):
    """The Open Hours slot is already booked at the hub."""


class IdempotencyKeyReused(Exception):
    """The key was first used at this hub with a different request."""


async def submit_consultation(
    session: AsyncSession,
    submitted: ConsultationSubmitted,
    *,
    correlation_id: uuid.UUID,
    idempotency_key: IdempotencyKey | None,
    link_ttl: timedelta,
) -> tuple[uuid.UUID, bool]:
    """Store the consultation, its attachments' metadata and its applicant link (the event's token, valid
    `link_ttl`), and stage `ConsultationSubmitted`. With an idempotency key already used at this hub for
    the same request, nothing is written and the first consultation's id is returned (False); for
    another request, `IdempotencyKeyReused` is raised."""
    if idempotency_key is not None:
        earlier = await earlier_submission(session, submitted.hub, idempotency_key)
        if earlier is not None:
            return earlier, False
    submitted = await flag_likely_duplicates(session, submitted)
    token, at = submitted.personal.applicant_link_token, submitted.submitted_at
    _, [event] = outbox.prepare(session, [outbox.Staged(submitted, hub=submitted.hub, correlation_id=correlation_id)])
    await repository.save_submission(
        session,
        submitted,
        idempotency_key=idempotency_key.key if idempotency_key else None,
        request_sha256=idempotency_key.request_sha256 if idempotency_key else None,
        link=None if token is None else repository.Link(link_digest(token), at, at + link_ttl),
        event=event,
    )
    # Without attachments, the statement above is the only write (`Submissions` then runs it without a
    # transaction, see `_store`): a write added here must come with a transaction for every submission.
    await repository.save_attachments(
        session,
        submitted.consultation_id,
        submitted.attachments,
        at=submitted.submitted_at,
        by=submitted.entered_by or APPLICANT,
    )
    return submitted.consultation_id, True


async def flag_likely_duplicates(session: AsyncSession, submitted: ConsultationSubmitted) -> ConsultationSubmitted:
    """The consultation with the hub's likely duplicates of it named: within 30 days, the same corporate
    number or email, the same product (the latest few: a form sent a thousand times must not grow each event
    by a thousand ids). Flagged for staff to judge; it is accepted and stored all the same."""
    product = domain.Product(submitted.product_name, submitted.product_kind.value)
    earlier = await repository.recent_from_the_same_applicant(
        session, submitted, since=submitted.submitted_at - domain.DUPLICATE_WINDOW, limit=domain.DUPLICATES_NAMED
    )
    duplicates = tuple(found for found, other in earlier if domain.same_product(product, other))
    return submitted.model_copy(update={"possible_duplicates": duplicates}) if duplicates else submitted


async def issue_link(session: AsyncSession, consultation_id: uuid.UUID, *, ttl: timedelta) -> str:
    """A further link to a consultation's page (the answer to a repeated submission, say): its token."""
    token = new_link_token()
    now = datetime.now(UTC)
    await repository.save_link(session, consultation_id, repository.Link(link_digest(token), now, now + ttl))
    return token


async def reference_of(session: AsyncSession, consultation_id: uuid.UUID) -> str | None:
    return await repository.reference_of(session, consultation_id)


async def revoke_links(session: AsyncSession, *, hub: str, consultation_id: uuid.UUID) -> int | None:
    """Every applicant link of the consultation stops opening it: how many were live; None when the hub
    has no such consultation."""
    if await repository.get_for_update(session, hub, consultation_id) is None:
        return None
    return await repository.revoke_links(session, consultation_id, datetime.now(UTC))


async def earlier_submission(session: AsyncSession, hub: str, idempotency_key: IdempotencyKey) -> uuid.UUID | None:
    """The consultation first submitted at the hub with this key, if any; `IdempotencyKeyReused` when
    it came with another request. A consultation stored before requests were hashed matches any."""
    earlier = await repository.get_by_idempotency_key(session, hub, idempotency_key.key)
    if earlier is None:
        return None
    consultation_id, request_sha256 = earlier
    if request_sha256 is not None and request_sha256 != idempotency_key.request_sha256:
        raise IdempotencyKeyReused(idempotency_key.key)
    return consultation_id


async def _apply(
    session: AsyncSession,
    hub: str,
    consultation_id: uuid.UUID,
    change: Callable[[domain.Consultation, datetime], domain.Consultation],
    event: Callable[[domain.Consultation, datetime], ConsultationEvent],
    correlation_id: uuid.UUID,
) -> domain.Consultation | None:
    """A staff or applicant command: the consultation locked, changed by the domain rule (which raises
    `domain.NotAllowed`), stored, and its event staged, all in the caller's transaction. None when the hub
    has no such consultation."""
    consultation = await repository.get_for_update(session, hub, consultation_id)
    if consultation is None:
        return None
    now = datetime.now(UTC)
    changed = change(consultation, now)
    await repository.save_status(session, changed)
    await outbox.stage(session, event(changed, now), hub=hub, correlation_id=correlation_id)
    return changed


async def withdraw_consultation(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    reason: WithdrawalReason,
    recorded_by: str,
    correlation_id: uuid.UUID,
) -> domain.Consultation | None:
    return await _apply(
        session,
        hub,
        consultation_id,
        domain.withdraw,
        lambda _, at: ConsultationWithdrawn(
            consultation_id=consultation_id, withdrawn_at=at, reason=reason, recorded_by=recorded_by
        ),
        correlation_id,
    )


async def screen_consultation(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    decision: ScreeningDecision,
    reason: OutOfScopeReason | None,
    recorded_by: str,
    correlation_id: uuid.UUID,
) -> domain.Consultation | None:
    return await _apply(
        session,
        hub,
        consultation_id,
        lambda consultation, at: domain.screen(consultation, decision, reason, at),
        lambda screened, at: ConsultationScreened(
            consultation_id=consultation_id,
            screened_at=at,
            decision=decision,
            reason=screened.out_of_scope_reason,
            recorded_by=recorded_by,
        ),
        correlation_id,
    )


async def close_consultation(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    outcome: Outcome,
    recorded_by: str,
    correlation_id: uuid.UUID,
) -> domain.Consultation | None:
    return await _apply(
        session,
        hub,
        consultation_id,
        lambda consultation, at: domain.close(consultation, outcome, at),
        lambda _, at: ConsultationClosed(
            consultation_id=consultation_id, closed_at=at, outcome=outcome, recorded_by=recorded_by
        ),
        correlation_id,
    )


async def add_note(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    text: str,
    recorded_by: str,
    correlation_id: uuid.UUID,
    awaits_applicant: bool = False,
) -> uuid.UUID | None:
    """A note in any state (`awaits_applicant`: it asks the applicant for something); None when the hub has
    no such consultation."""
    consultation = await repository.get_for_update(session, hub, consultation_id)
    if consultation is None:
        return None
    note = tables.Note(
        id=uuid.uuid4(), consultation_id=consultation_id, noted_at=datetime.now(UTC), recorded_by=recorded_by, text=text
    )
    await repository.save_note(session, note)
    event = NoteAdded(
        consultation_id=consultation_id,
        note_id=note.id,
        noted_at=note.noted_at,
        recorded_by=recorded_by,
        personal=NotePersonal(text=text),
        awaits_applicant=awaits_applicant,
    )
    await outbox.stage(session, event, hub=hub, correlation_id=correlation_id)
    return note.id


async def supplement_consultation(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    note: str | None,
    attachments: Sequence[Attachment],
    correlation_id: uuid.UUID,
) -> None:
    """The applicant added information or files: their metadata stored, `ConsultationSupplemented` staged.
    Raises `domain.AlreadyWithdrawn` for a withdrawn consultation."""
    consultation = await repository.get_for_update(session, hub, consultation_id)
    if consultation is None:
        raise LookupError(consultation_id)
    domain.check_open(consultation)
    now = datetime.now(UTC)
    await repository.save_attachments(session, consultation_id, attachments, at=now, by=APPLICANT)
    event = ConsultationSupplemented(
        consultation_id=consultation_id,
        supplemented_at=now,
        attachments=tuple(attachments),
        personal=SupplementPersonal(note=note),
    )
    await outbox.stage(session, event, hub=hub, correlation_id=correlation_id)


async def change_consents(
    session: AsyncSession,
    *,
    hub: str,
    consultation_id: uuid.UUID,
    consents: Consents,
    changed_by: str,
    correlation_id: uuid.UUID,
) -> bool:
    """Replace what the applicant agreed to; False when nothing changed (no event)."""
    current = await repository.consents_for_update(session, hub, consultation_id)
    if current is None:
        raise LookupError(consultation_id)
    if current == consents:
        return False
    await repository.save_consents(session, consultation_id, consents)
    event = ConsentsChanged(
        consultation_id=consultation_id, changed_at=datetime.now(UTC), consents=consents, changed_by=changed_by
    )
    await outbox.stage(session, event, hub=hub, correlation_id=correlation_id)
    return True
