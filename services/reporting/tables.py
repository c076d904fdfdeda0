"""Reporting's read models, in schema `reporting`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, Index, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.reporting import SERVICE
from shared import db, inbox

metadata = db.service_metadata(SERVICE.schema)


class Base(DeclarativeBase):
    metadata = metadata


class ConsultationView(Base):
    __tablename__ = "consultations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hub: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    language: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(Text)
    applicant_kind: Mapped[str | None] = mapped_column(Text)
    organization: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    product_kind: Mapped[str | None] = mapped_column(Text)
    development_stage: Mapped[str | None] = mapped_column(Text)
    topics: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    contact_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    match_candidates: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    match_proposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivery_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The full record (相談カルテ); empty for consultations submitted before it.
    reference: Mapped[str | None] = mapped_column(Text)
    corporate_number: Mapped[str | None] = mapped_column(Text)
    prefecture: Mapped[str | None] = mapped_column(Text)
    product_name: Mapped[str | None] = mapped_column(Text)
    meeting_format: Mapped[str | None] = mapped_column(Text)
    open_hours_slot: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    family_name: Mapped[str | None] = mapped_column(Text)
    given_name: Mapped[str | None] = mapped_column(Text)
    family_name_kana: Mapped[str | None] = mapped_column(Text)
    given_name_kana: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    co_researchers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    consents: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    entered_by: Mapped[str | None] = mapped_column(Text)
    possible_duplicates: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    screened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    screening_decision: Mapped[str | None] = mapped_column(Text)
    out_of_scope_reason: Mapped[str | None] = mapped_column(Text)
    screened_by: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str | None] = mapped_column(Text)
    # Since when the hub waits on the applicant (a note asked them for something), until they add information.
    awaiting_applicant_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # 年度 (April to March, Japan time) of the submission: what every hub reports by.
    fiscal_year: Mapped[int | None] = mapped_column(Integer)
    # Japanese and English full text: character bigrams of Japanese runs, words of the rest (`domain.search_document`).
    search: Mapped[str | None] = mapped_column(TSVECTOR)

    __table_args__ = (
        # The queues' order and keyset pagination: a hub's newest first.
        Index("ix_consultations_hub_submitted", "hub", "submitted_at", "id"),
        Index("ix_consultations_hub_fiscal_year", "hub", "fiscal_year"),
        Index("ix_consultations_search", "search", postgresql_using="gin"),
    )


class TimelineEntry(Base):
    __tablename__ = "timeline"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column(index=True)
    hub: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    correlation_id: Mapped[uuid.UUID]
    # Who did it, where a person did (staff account, or `applicant`), and what they decided or wrote.
    actor: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class SavedView(Base):
    """A list's search and order that a staff member saved under a name: their own, at their hub. Not built
    from events (a preference, not a projection): a rebuild keeps it."""

    __tablename__ = "saved_views"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    hub: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_saved_views_owner", "hub", "owner", "name", unique=True),)


inbox_table = inbox.define_table(metadata)
