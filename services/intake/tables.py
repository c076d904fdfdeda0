"""Intake's tables, in schema `intake`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.intake import SERVICE
from shared import db, outbox

metadata = db.service_metadata(SERVICE.schema)


class Base(DeclarativeBase):
    metadata = metadata


class Consultation(Base):
    __tablename__ = "consultations"
    __table_args__ = (
        UniqueConstraint("hub", "idempotency_key", name="uq_consultations_idempotency"),
        # The lookups of likely duplicates: by corporate number, by address, recent first.
        Index("ix_consultations_corporate_number", "hub", "corporate_number", "submitted_at"),
        Index("ix_consultations_email", "hub", func.lower(text("email")), "submitted_at"),
        UniqueConstraint("reference", name="uq_consultations_reference"),
        # One consultation per Open Hours slot and hub.
        UniqueConstraint("hub", "open_hours_slot", name="uq_consultations_open_hours_slot"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hub: Mapped[str] = mapped_column(Text, index=True)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    # The SHA-256 (hex) of the request that first used the key; NULL for rows from before revision 0002.
    request_sha256: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(Text)
    applicant_kind: Mapped[str] = mapped_column(Text)
    organization: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    product_kind: Mapped[str] = mapped_column(Text)
    development_stage: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(ARRAY(Text))
    consent_to_share: Mapped[bool]
    contact_name: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # The full record (revision 0003); NULL in rows from before it.
    reference: Mapped[str | None] = mapped_column(Text)
    corporate_number: Mapped[str | None] = mapped_column(Text)
    prefecture: Mapped[str | None] = mapped_column(Text)
    product_name: Mapped[str | None] = mapped_column(Text)
    meeting_format: Mapped[str | None] = mapped_column(Text)
    contact_by_email: Mapped[bool | None]
    share_with: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    family_name: Mapped[str | None] = mapped_column(Text)
    given_name: Mapped[str | None] = mapped_column(Text)
    family_name_kana: Mapped[str | None] = mapped_column(Text)
    given_name_kana: Mapped[str | None] = mapped_column(Text)
    co_researchers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    entered_by: Mapped[str | None] = mapped_column(Text)
    open_hours_slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Likely duplicates found at submission (revision 0005): flagged, never merged.
    possible_duplicates: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))
    # Staff commands (revision 0004).
    screened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    screening_decision: Mapped[str | None] = mapped_column(Text)
    out_of_scope_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(Text)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    noted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)


class StaffAccount(Base):
    """A staff member's own account at one hub: roles there, an argon2 password hash, the lockout state."""

    __tablename__ = "staff_accounts"
    __table_args__ = (UniqueConstraint("hub", "email", name="uq_staff_accounts_hub_email"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hub: Mapped[str] = mapped_column(Text)
    email: Mapped[str] = mapped_column(Text)  # lower-cased
    display_name: Mapped[str] = mapped_column(Text)
    roles: Mapped[list[str]] = mapped_column(ARRAY(Text))
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool]
    failed_attempts: Mapped[int]
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Attachment(Base):
    """A file's metadata; its bytes are in the attachment store under `storage_key`."""

    __tablename__ = "attachments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"), index=True)
    filename: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text)
    storage_key: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(Text)


class ApplicantLink(Base):
    """The applicant's own page: a secret link, kept only as its SHA-256; expiring and revocable."""

    __tablename__ = "applicant_links"
    __table_args__ = (Index("ix_applicant_links_consultation", "consultation_id"),)

    token_sha256: Mapped[str] = mapped_column(Text, primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("consultations.id"))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Secret(Base):
    """Keys intake makes for itself (the portal forms' signing key): random, shared by its replicas."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


outbox_table = outbox.define_table(metadata)
