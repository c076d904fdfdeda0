"""Reporting's read models on the real database: built from events, searched in Japanese and English,
paged by keyset, counted by fiscal year."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting import domain, handlers, repository
from shared import db
from shared.contract import Event, EventData, new_envelope
from shared.contract.consultation import (
    ApplicantPersonal,
    ConsultationClosed,
    ConsultationScreened,
    ConsultationSubmitted,
    ConsultationSupplemented,
    NoteAdded,
    NotePersonal,
    SupplementPersonal,
)
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    Language,
    Outcome,
    OutOfScopeReason,
    ProductKind,
    ScreeningDecision,
    SupportField,
)
from shared.settings import CommonSettings
from tests import history

HUB = "pmda"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = db.create_engine(CommonSettings(database_url=database_url), application_name="test")
    yield db.create_sessions(engine)
    await engine.dispose()


def event(data: EventData, hub: str = HUB) -> Event[Any]:
    return Event(new_envelope(data, source="/hubnet/intake", hub=hub, subject=data.subject), data)


def submission(
    *,
    title: str = "治験計画について",
    body: str = "相談内容",
    organization: str = "株式会社テストメディカル",
    corporate_number: str | None = None,
    topics: Sequence[SupportField] = (SupportField.REGULATION,),
    at: datetime | None = None,
    hub: str = HUB,
) -> ConsultationSubmitted:
    return ConsultationSubmitted(
        consultation_id=uuid.uuid4(),
        hub=hub,
        submitted_at=at or datetime.now(UTC),
        channel=Channel.PORTAL,
        language=Language.JA,
        applicant_kind=ApplicantKind.STARTUP,
        organization=organization,
        corporate_number=corporate_number,
        title=title,
        product_kind=ProductKind.SAMD,
        development_stage=DevelopmentStage.CLINICAL,
        topics=tuple(topics),
        personal=ApplicantPersonal(contact_name="山田 花子", email="hanako@example.jp", body=body),
    )


async def project(sessions: async_sessionmaker[AsyncSession], *submissions: ConsultationSubmitted) -> None:
    async with sessions.begin() as session:
        await handlers.projecting(handlers.submitted)(session, [event(data, data.hub) for data in submissions])


async def found(sessions: async_sessionmaker[AsyncSession], **search: Any) -> set[uuid.UUID]:
    async with sessions() as session:
        page = await repository.search_consultations(session, HUB, repository.Search(**search), limit=100)
    return {row.id for row in page.rows}


async def test_japanese_and_english_full_text_and_company_search(sessions: async_sessionmaker[AsyncSession]) -> None:
    approval = submission(title="薬事承認に向けた相談", body="クラスII医療機器の承認申請について")
    english = submission(title="Regulatory strategy for our SaMD 0e67a074", body="We plan a clinical trial in Japan.")
    other = submission(
        title="資金調達の相談",
        body="シリーズAに向けて",
        organization="株式会社ヘルスケアＡＩ",
        corporate_number="7000012050002",
    )
    elsewhere = submission(title="薬事の相談", hub="mediso")
    await project(sessions, approval, english, other, elsewhere)

    assert await found(sessions, text="薬事") == {approval.consultation_id}, "another hub's is never found"
    assert await found(sessions, text="承認申請") == {approval.consultation_id}
    assert await found(sessions, text="薬") == {approval.consultation_id}, "one character finds it too"
    assert await found(sessions, text="事薬") == set(), "the characters in their order, not any order"
    assert await found(sessions, text="regulatory") == {english.consultation_id}
    assert await found(sessions, text="0e67a074") == {english.consultation_id}, "a word that looks like 0e67"
    assert await found(sessions, text="Clinical TRIAL") == {english.consultation_id}
    assert await found(sessions, text="ＳａＭＤ") == {english.consultation_id}, "full-width letters are letters"
    assert await found(sessions, company="ヘルスケアＡＩ") == {other.consultation_id}
    assert await found(sessions, company="7000012050002") == {other.consultation_id}
    assert len(await found(sessions, text="!?")) == 3, "nothing searchable asks nothing"


async def test_keyset_pages_cover_every_row_once_in_order(sessions: async_sessionmaker[AsyncSession]) -> None:
    start = datetime(2025, 5, 1, tzinfo=UTC)
    submissions = [submission(at=start + timedelta(hours=i // 2), organization=f"社{i % 3}") for i in range(11)]
    await project(sessions, *submissions)
    for sort, descending in (("submitted_at", True), ("organization", False), ("status", True)):
        seen: list[uuid.UUID] = []
        after = None
        async with sessions() as session:
            while True:
                page = await repository.search_consultations(
                    session, HUB, repository.Search(), sort=sort, descending=descending, after=after, limit=4
                )
                seen += [row.id for row in page.rows]
                if page.next_after is None:
                    break
                after = page.next_after
            everything = await repository.search_consultations(
                session, HUB, repository.Search(), sort=sort, descending=descending, limit=100
            )
        assert seen == [row.id for row in everything.rows], sort
        assert len(set(seen)) == 11


async def test_fiscal_year_counts_applications_and_topics_apart(sessions: async_sessionmaker[AsyncSession]) -> None:
    japan = domain.JAPAN
    last_day = datetime(2022, 3, 31, 23, 30, tzinfo=japan)  # FY2021
    first_day = datetime(2022, 4, 1, 0, 30, tzinfo=japan)  # FY2022
    both = (SupportField.REGULATION, SupportField.BUSINESS_PLANNING)
    await project(
        sessions,
        submission(at=last_day, topics=both),
        submission(at=last_day - timedelta(days=40), topics=(SupportField.REGULATION,)),
        submission(at=first_day, topics=both),
    )
    async with sessions() as session:
        fy2021 = await repository.count_year(session, HUB, 2021)
        fy2022 = await repository.count_year(session, HUB, 2022)
        years = await repository.fiscal_years(session, HUB)
    assert years == [2022, 2021]
    assert fy2021.applications == 2
    assert fy2021.topics == {"regulation": 2, "business_planning": 1}, "an application carries several topics"
    assert fy2021.by_month == {2: 1, 3: 1}
    assert fy2022.applications == 1
    assert fy2022.by_month == {4: 1}
    assert fy2021.dimensions["product_kind"] == {"samd": 2}
    assert domain.fiscal_quarter(first_day) == 1
    assert domain.fiscal_quarter(last_day) == 4


async def test_screening_notes_and_closure_move_the_view_and_name_the_actor(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    accepted, refused = submission(), submission()
    await project(sessions, accepted, refused)
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        await handlers.projecting(handlers.screened)(
            session,
            [
                event(
                    ConsultationScreened(
                        consultation_id=accepted.consultation_id,
                        screened_at=now,
                        decision=ScreeningDecision.ACCEPTED,
                        recorded_by="screener@pmda.example",
                    )
                ),
                event(
                    ConsultationScreened(
                        consultation_id=refused.consultation_id,
                        screened_at=now,
                        decision=ScreeningDecision.OUT_OF_SCOPE,
                        reason=OutOfScopeReason.NOT_HEALTHCARE,
                        recorded_by="screener@pmda.example",
                    )
                ),
            ],
        )
        await handlers.projecting(handlers.note_added)(
            session,
            [
                event(
                    NoteAdded(
                        consultation_id=accepted.consultation_id,
                        note_id=uuid.uuid4(),
                        noted_at=now,
                        recorded_by="expert@pmda.example",
                        personal=NotePersonal(text="初回面談を調整中"),
                    )
                )
            ],
        )
        await handlers.projecting(handlers.closed)(
            session,
            [
                event(
                    ConsultationClosed(
                        consultation_id=accepted.consultation_id,
                        closed_at=now,
                        outcome=Outcome.ADVICE_GIVEN,
                        recorded_by="admin@pmda.example",
                    )
                )
            ],
        )
    async with sessions() as session:
        record = await repository.get_by_id(session, HUB, accepted.consultation_id)
        other = await repository.get_by_id(session, HUB, refused.consultation_id)
    assert record is not None
    assert other is not None
    assert record.view.status == "closed"
    assert record.view.screening_decision == "accepted"
    assert record.view.outcome == "advice_given"
    assert other.view.status == "rejected"
    assert other.view.out_of_scope_reason == "not_healthcare"
    assert [(entry.event_type.split(".")[2], entry.actor) for entry in record.timeline] == [
        ("submitted", None),
        ("screened", "screener@pmda.example"),
        ("note_added", "expert@pmda.example"),
        ("closed", "admin@pmda.example"),
    ]
    assert record.timeline[2].detail == {"text": "初回面談を調整中"}
    assert await found(sessions, statuses=("closed",)) == {accepted.consultation_id}
    assert await found(sessions, actor="screener@pmda.example") == {accepted.consultation_id, refused.consultation_id}


async def test_the_samd_windows_fiscal_years_are_reported_exactly(sessions: async_sessionmaker[AsyncSession]) -> None:
    """FY2021: 238 applications carrying 175 / 110 / 43 consultations by desk; FY2022: 216 carrying 166 / 79 / 36."""
    for year, (applications, desks) in history.SAMD_WINDOW.items():
        submissions = history.fiscal_year_of_applications(HUB, year, applications, desks)
        for start in range(0, len(submissions), 100):  # as the consumer applies them: in batches
            await project(sessions, *submissions[start : start + 100])
    async with sessions() as session:
        for year, (applications, desks) in history.SAMD_WINDOW.items():
            counts = await repository.count_year(session, HUB, year)
            assert counts.applications == applications
            assert counts.topics == {desk.value: count for desk, count in desks.items()}
            assert sum(counts.by_month.values()) == applications
            assert set(counts.by_month) == set(range(1, 13)), "spread over the whole fiscal year"
            assert sum(counts.topics.values()) != counts.applications, "consultations are not applications"


async def test_a_search_document_is_the_same_tsvector_as_text_and_in_binary(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The live upserts write the literal, the rebuild's COPY the binary form: PostgreSQL reads them alike,
    positions past its last one included."""
    document = domain.SearchDocument.of(["薬事承認に向けた相談 SaMD", "承認 " * 9000, "ＡＩ　診断"])
    async with sessions() as session:
        connection = await session.connection()
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.set_type_codec("tsvector", schema="pg_catalog", encoder=bytes, decoder=bytes, format="binary")
        try:
            await raw.execute("CREATE TEMPORARY TABLE documents (search tsvector)")
            await raw.copy_records_to_table("documents", records=[(document.binary(),)])
            same = await raw.fetchval(
                "SELECT search::text = $1::text::tsvector::text FROM documents", document.literal()
            )
            sent = await raw.fetchval("SELECT tsvectorsend(search) FROM documents")
        finally:
            await connection.invalidate()
    assert same
    assert sent == document.binary(), "the lexemes in PostgreSQL's own order: nothing left for it to sort"


async def test_a_note_that_asks_the_applicant_waits_until_they_add_information(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The "waiting" queue: a note with `awaits_applicant` puts the consultation in it, the applicant's
    supplement takes it out (in one batch or two alike: the fold is the same)."""
    asked = submission()
    await project(sessions, asked)
    now = datetime.now(UTC)
    note = NoteAdded(
        consultation_id=asked.consultation_id,
        note_id=uuid.uuid4(),
        noted_at=now,
        recorded_by="screener@pmda.example",
        personal=NotePersonal(text="決算書をお送りください"),
        awaits_applicant=True,
    )
    async with sessions.begin() as session:
        await handlers.projecting(handlers.note_added)(session, [event(note)])
    assert asked.consultation_id in await found(sessions, waiting=True)
    async with sessions() as session:
        record = await repository.get_by_id(session, HUB, asked.consultation_id)
    assert record is not None
    assert record.view.awaiting_applicant_since == now
    assert record.timeline[-1].detail == {"text": "決算書をお送りください", "awaits_applicant": True}

    answer = ConsultationSupplemented(
        consultation_id=asked.consultation_id,
        supplemented_at=now + timedelta(days=1),
        personal=SupplementPersonal(note="お送りします"),
    )
    async with sessions.begin() as session:
        await handlers.projecting(handlers.supplemented)(session, [event(answer)])
    assert asked.consultation_id not in await found(sessions, waiting=True)
