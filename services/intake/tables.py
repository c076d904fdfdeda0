"""Intake's tables, in schema `intake`."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.intake import SERVICE
from shared import db, outbox

metadata = db.service_metadata(SERVICE.schema)


class Base(DeclarativeBase):
    metadata = metadata


class Consultation(Base):
    __tablename__ = "consultations"
    __table_args__ = (UniqueConstraint("hub", "idempotency_key", name="uq_consultations_idempotency"),)

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


outbox_table = outbox.define_table(metadata)
