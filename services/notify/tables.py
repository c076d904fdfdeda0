"""Notify's tables, in schema `notify`."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, Text, UniqueConstraint, func, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.notify import SERVICE
from shared import db, inbox, outbox

metadata = db.service_metadata(SERVICE.schema)


class Base(DeclarativeBase):
    metadata = metadata


class Delivery(Base):
    __tablename__ = "deliveries"
    # One delivery per cause and template: a redelivered event can never queue a second message.
    __table_args__ = (
        UniqueConstraint("cause_event_id", "template", name="uq_deliveries_cause_template"),
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("status IN ('pending', 'sending')")),
        # Recent messages to one address (the per-recipient limit on acknowledgements).
        Index("ix_deliveries_recipient_created", "recipient", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hub: Mapped[str] = mapped_column(Text)
    consultation_id: Mapped[uuid.UUID]
    cause_event_id: Mapped[uuid.UUID]
    correlation_id: Mapped[uuid.UUID]
    template: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(Text)
    recipient: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # For `pending`: when to try next; for `sending`: when the lease lapses (the sender presumed dead).
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


outbox_table = outbox.define_table(metadata)
inbox_table = inbox.define_table(metadata)
