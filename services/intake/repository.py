"""Every SQL statement of intake."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Insert, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import domain, tables
from shared import outbox
from shared.contract.consultation import Attachment, Consents, ConsultationSubmitted
from shared.contract.vocabulary import Outcome, OutOfScopeReason, ScreeningDecision


def _to_domain(row: tables.Consultation) -> domain.Consultation:
    return domain.Consultation(
        id=row.id,
        hub=row.hub,
        submitted_at=row.submitted_at,
        status=domain.Status(row.status),
        withdrawn_at=row.withdrawn_at,
        screened_at=row.screened_at,
        screening_decision=ScreeningDecision(row.screening_decision) if row.screening_decision else None,
        out_of_scope_reason=OutOfScopeReason(row.out_of_scope_reason) if row.out_of_scope_reason else None,
        closed_at=row.closed_at,
        outcome=Outcome(row.outcome) if row.outcome else None,
    )


# The tables behind the mapped classes, for Core INSERTs on the submission's path.
_CONSULTATIONS = cast(Table, tables.Consultation.__table__)
_ATTACHMENTS = cast(Table, tables.Attachment.__table__)
_LINKS = cast(Table, tables.ApplicantLink.__table__)


class Link(NamedTuple):
    """An applicant link as stored: the token's SHA-256 and its validity."""

    token_sha256: str
    issued_at: datetime
    expires_at: datetime


async def save_submission(
    session: AsyncSession,
    submitted: ConsultationSubmitted,
    *,
    idempotency_key: str | None,
    request_sha256: str | None,
    link: Link | None,
    event: Mapping[str, Any],
) -> None:
    """The consultation, its applicant link and its event's outbox row (`outbox.prepare`) in one statement:
    the link and the event ride along as data-modifying CTEs (one round trip where there were three, each
    about 5% of intake's CPU under load; py-spy). One statement commits or fails whole, as the three did in
    their transaction; its constraint errors name the same constraints."""
    consultation = _consultation_values(submitted, idempotency_key=idempotency_key, request_sha256=request_sha256)
    params = {f"c_{name}": value for name, value in consultation.items()}
    params |= {f"o_{name}": event[name] for name in outbox.ROW_COLUMNS}
    if link is not None:
        params |= {"l_token_sha256": link.token_sha256, "l_issued_at": link.issued_at, "l_expires_at": link.expires_at}
    await session.execute(_submission(tuple(consultation), with_link=link is not None), params)


@functools.cache
def _submission(columns: tuple[str, ...], *, with_link: bool) -> Insert:
    """Built once per shape and then cached, compiled, by SQLAlchemy."""

    def values(table: Table, prefix: str, names: Iterable[str]) -> dict[str, Any]:
        return {name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in names}

    statement = insert(tables.outbox_table).values(values(tables.outbox_table, "o_", outbox.ROW_COLUMNS))
    statement = statement.add_cte(
        insert(_CONSULTATIONS).values(values(_CONSULTATIONS, "c_", columns)).cte("consultation")
    )
    if with_link:
        link = values(_LINKS, "l_", ("token_sha256", "issued_at", "expires_at"))
        link["consultation_id"] = bindparam("c_id", type_=_LINKS.c.consultation_id.type)
        statement = statement.add_cte(insert(_LINKS).values(link).cte("link"))
    return statement


def _consultation_values(
    submitted: ConsultationSubmitted, *, idempotency_key: str | None, request_sha256: str | None
) -> dict[str, Any]:
    personal = submitted.personal
    return {
        "id": submitted.consultation_id,
        "hub": submitted.hub,
        "submitted_at": submitted.submitted_at,
        "status": domain.Status.SUBMITTED.value,
        "idempotency_key": idempotency_key,
        "request_sha256": request_sha256,
        "channel": submitted.channel.value,
        "language": submitted.language.value,
        "applicant_kind": submitted.applicant_kind.value,
        "organization": submitted.organization,
        "title": submitted.title,
        "product_kind": submitted.product_kind.value,
        "development_stage": submitted.development_stage.value,
        "topics": [topic.value for topic in submitted.topics],
        "consent_to_share": submitted.consent_to_share,
        "contact_name": personal.contact_name,
        "email": str(personal.email),
        "phone": personal.phone,
        "body": personal.body,
        "reference": submitted.reference,
        "corporate_number": submitted.corporate_number,
        "prefecture": submitted.prefecture.value if submitted.prefecture else None,
        "product_name": submitted.product_name,
        "meeting_format": submitted.meeting_format.value if submitted.meeting_format else None,
        "contact_by_email": submitted.consents.contact_by_email if submitted.consents else None,
        "share_with": list(submitted.consents.share_with) if submitted.consents else None,
        "family_name": personal.family_name,
        "given_name": personal.given_name,
        "family_name_kana": personal.family_name_kana,
        "given_name_kana": personal.given_name_kana,
        "co_researchers": [person.model_dump(mode="json") for person in personal.co_researchers],
        "entered_by": submitted.entered_by,
        "open_hours_slot": submitted.open_hours_slot,
        "possible_duplicates": list(submitted.possible_duplicates) or None,
    }


async def save_attachments(
    session: AsyncSession, consultation_id: uuid.UUID, attachments: Sequence[Attachment], *, at: datetime, by: str
) -> None:
    if not attachments:
        return
    await session.execute(
        insert(_ATTACHMENTS),
        [
            {
                "id": attachment.attachment_id,
                "consultation_id": consultation_id,
                "filename": attachment.filename,
                "media_type": attachment.media_type,
                "size": attachment.size,
                "sha256": attachment.sha256,
                "storage_key": str(attachment.attachment_id),
                "added_at": at,
                "added_by": by,
            }
            for attachment in attachments
        ],
    )


async def list_attachments(session: AsyncSession, consultation_id: uuid.UUID) -> list[tables.Attachment]:
    rows = await session.scalars(
        select(tables.Attachment)
        .where(tables.Attachment.consultation_id == consultation_id)
        .order_by(tables.Attachment.added_at, tables.Attachment.filename)
    )
    return list(rows)


async def save_link(session: AsyncSession, consultation_id: uuid.UUID, link: Link) -> None:
    await session.execute(
        insert(_LINKS),
        {
            "token_sha256": link.token_sha256,
            "consultation_id": consultation_id,
            "issued_at": link.issued_at,
            "expires_at": link.expires_at,
        },
    )


async def consultation_by_link(session: AsyncSession, token_sha256: str, now: datetime) -> tables.Consultation | None:
    """The consultation a link opens, while it is neither expired nor revoked."""
    return await session.scalar(
        select(tables.Consultation)
        .join(tables.ApplicantLink, tables.ApplicantLink.consultation_id == tables.Consultation.id)
        .where(
            tables.ApplicantLink.token_sha256 == token_sha256,
            tables.ApplicantLink.expires_at > now,
            tables.ApplicantLink.revoked_at.is_(None),
        )
    )


async def revoke_links(session: AsyncSession, consultation_id: uuid.UUID, at: datetime) -> int:
    result = await session.execute(
        update(tables.ApplicantLink)
        .where(tables.ApplicantLink.consultation_id == consultation_id, tables.ApplicantLink.revoked_at.is_(None))
        .values(revoked_at=func.least(at, tables.ApplicantLink.expires_at))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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


async def reference_of(session: AsyncSession, consultation_id: uuid.UUID) -> str | None:
    return await session.scalar(select(tables.Consultation.reference).where(tables.Consultation.id == consultation_id))


async def save_status(session: AsyncSession, consultation: domain.Consultation) -> None:
    await session.execute(
        update(tables.Consultation)
        .where(tables.Consultation.id == consultation.id)
        .values(
            status=consultation.status.value,
            withdrawn_at=consultation.withdrawn_at,
            screened_at=consultation.screened_at,
            screening_decision=consultation.screening_decision,
            out_of_scope_reason=consultation.out_of_scope_reason,
            closed_at=consultation.closed_at,
            outcome=consultation.outcome,
        )
    )


async def save_note(session: AsyncSession, note: tables.Note) -> None:
    session.add(note)
    await session.flush()


async def staff_account(session: AsyncSession, hub: str, email: str, *, for_update: bool) -> tables.StaffAccount | None:
    query = select(tables.StaffAccount).where(tables.StaffAccount.hub == hub, tables.StaffAccount.email == email)
    return await session.scalar(query.with_for_update() if for_update else query)


async def save_staff_account(session: AsyncSession, account: tables.StaffAccount) -> None:
    session.add(account)
    await session.flush()


async def consents_for_update(session: AsyncSession, hub: str, consultation_id: uuid.UUID) -> Consents | None:
    row = (
        await session.execute(
            select(
                tables.Consultation.contact_by_email,
                tables.Consultation.share_with,
                tables.Consultation.consent_to_share,
            )
            .where(tables.Consultation.hub == hub, tables.Consultation.id == consultation_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        return None
    # Before the full record, consent was one flag and contact by email implied by the submission.
    contact = True if row.contact_by_email is None else row.contact_by_email
    return Consents(contact_by_email=contact, share_with=tuple(row.share_with or ()))


async def save_consents(session: AsyncSession, consultation_id: uuid.UUID, consents: Consents) -> None:
    await session.execute(
        update(tables.Consultation)
        .where(tables.Consultation.id == consultation_id)
        .values(
            contact_by_email=consents.contact_by_email,
            share_with=list(consents.share_with),
            consent_to_share=bool(consents.share_with),
        )
    )


# Built once: composing the expression on every submission cost more than running it. A corporate number
# of NULL matches nothing, as when none was given.
_SAME_APPLICANT = (
    select(tables.Consultation.id, tables.Consultation.product_name, tables.Consultation.product_kind)
    .where(
        tables.Consultation.hub == bindparam("hub"),
        tables.Consultation.submitted_at >= bindparam("since"),
        or_(
            func.lower(tables.Consultation.email) == bindparam("email"),
            tables.Consultation.corporate_number == bindparam("corporate_number"),
        ),
    )
    .order_by(tables.Consultation.submitted_at.desc())
    .limit(bindparam("limit"))
)


async def recent_from_the_same_applicant(
    session: AsyncSession, submitted: ConsultationSubmitted, *, since: datetime, limit: int
) -> list[tuple[uuid.UUID, domain.Product]]:
    """The hub's latest `limit` consultations since `since` with the same corporate number or email, and
    their products, oldest first."""
    rows = await session.execute(
        _SAME_APPLICANT,
        {
            "hub": submitted.hub,
            "since": since,
            "email": str(submitted.personal.email).lower(),
            "corporate_number": submitted.corporate_number,
            "limit": limit,
        },
    )
    return [(row.id, domain.Product(row.product_name, row.product_kind)) for row in reversed(rows.all())]
