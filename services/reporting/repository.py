"""Every SQL statement of reporting."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import DateTime, Integer, cast, delete, func, literal, or_, select, tuple_
from sqlalchemy.dialects.postgresql import TSQUERY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import domain, tables
from shared import db
from shared.contract import ContextAttributes
from shared.contract.consultation import ConsultationClosed, ConsultationScreened, NoteAdded


@dataclass(frozen=True, slots=True)
class ConsultationRecord:
    view: tables.ConsultationView
    timeline: list[tables.TimelineEntry]


async def lock_statuses(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, domain.Status]:
    """The current status of each known consultation, locked until the transaction ends."""
    rows = await session.execute(
        select(tables.ConsultationView.id, tables.ConsultationView.status)
        .where(tables.ConsultationView.id.in_(list(ids)))
        .order_by(tables.ConsultationView.id)  # one lock order for every replica: no deadlocks between them
        .with_for_update()
    )
    return {row.id: domain.Status(row.status) for row in rows}


async def save_views(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update views, one row per consultation (events may rebuild a view in any state), in one
    statement per shape of row: each sets only the columns its events set."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if isinstance(search := row.get("search"), domain.SearchDocument):
            row["search"] = search.literal()
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    for columns, same in shapes.items():
        update = [name for name in columns if name != "id"]
        await db.insert_rows(session, tables.ConsultationView.__table__, same, conflict=("id",), update=update)


async def add_to_timeline(
    session: AsyncSession, entries: Sequence[tuple[ContextAttributes, str | None, dict[str, Any] | None]]
) -> None:
    """Each event with its actor and detail, once (a replay finds its entry there)."""
    await db.insert_rows(
        session,
        tables.TimelineEntry.__table__,
        [
            {
                "event_id": envelope.id,
                "consultation_id": uuid.UUID(envelope.subject),
                "hub": envelope.hub,
                "event_type": envelope.type,
                "source": envelope.source,
                "occurred_at": envelope.time,
                "correlation_id": envelope.correlation_id,
                "actor": actor,
                "detail": detail,
            }
            for envelope, actor, detail in entries
        ],
        conflict=("event_id",),
    )


async def get_by_id(session: AsyncSession, hub: str, consultation_id: uuid.UUID) -> ConsultationRecord | None:
    view = await session.scalar(
        select(tables.ConsultationView).where(
            tables.ConsultationView.hub == hub, tables.ConsultationView.id == consultation_id
        )
    )
    if view is None:
        return None
    timeline = await session.scalars(
        select(tables.TimelineEntry)
        .where(tables.TimelineEntry.consultation_id == consultation_id)
        .order_by(tables.TimelineEntry.occurred_at, tables.TimelineEntry.event_id)
    )
    return ConsultationRecord(view, list(timeline))


async def list_consultations(
    session: AsyncSession, hub: str, *, limit: int, offset: int
) -> list[tables.ConsultationView]:
    rows = await session.scalars(
        select(tables.ConsultationView)
        .where(tables.ConsultationView.hub == hub)
        .order_by(tables.ConsultationView.submitted_at.desc().nulls_last(), tables.ConsultationView.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows)


SORTS: dict[str, Any] = {
    "submitted_at": tables.ConsultationView.submitted_at,
    "organization": tables.ConsultationView.organization,
    "status": tables.ConsultationView.status,
    "reference": tables.ConsultationView.reference,
}
"""The columns a list may be sorted by; every sort ends on the id, so the order is total."""


@dataclass(frozen=True, slots=True)
class Search:
    """What a person asks of a hub's consultations. Empty fields ask nothing."""

    text: str = ""
    company: str = ""
    submitted_from: date | None = None
    submitted_to: date | None = None
    statuses: tuple[str, ...] = ()
    topic: str | None = None
    product_kind: str | None = None
    channel: str | None = None
    actor: str | None = None
    fiscal_year: int | None = None
    received_before: datetime | None = None
    waiting: bool | None = None
    """Only those waiting on their applicant (True), or only those not (False)."""


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[tables.ConsultationView]
    next_after: tuple[Any, uuid.UUID] | None


def _conditions(hub: str, search: Search) -> list[Any]:
    view = tables.ConsultationView
    conditions: list[Any] = [view.hub == hub]
    if search.text and (query := domain.search_query(search.text)) is not None:
        # The query's lexemes as they are (a `tsquery` literal, like the document's `tsvector`): no parser
        # in between, which would read "0e67a074" as the number 0e67 and the word a074.
        conditions.append(view.search.bool_op("@@")(cast(literal(query), TSQUERY)))
    if company := search.company.strip():
        digits = company.replace("-", "").replace(" ", "")
        conditions.append(
            or_(view.organization.ilike(f"%{_escaped(company)}%", escape="\\"), view.corporate_number == digits)
        )
    if search.submitted_from is not None:
        conditions.append(view.submitted_at >= _start_of(search.submitted_from))
    if search.submitted_to is not None:
        conditions.append(view.submitted_at < _start_of(search.submitted_to + timedelta(days=1)))
    if search.statuses:
        conditions.append(view.status.in_(search.statuses))
    if search.topic:
        conditions.append(view.topics.contains([search.topic]))
    if search.product_kind:
        conditions.append(view.product_kind == search.product_kind)
    if search.channel:
        conditions.append(view.channel == search.channel)
    if search.actor:
        conditions.append(or_(view.screened_by == search.actor, view.entered_by == search.actor))
    if search.fiscal_year is not None:
        conditions.append(view.fiscal_year == search.fiscal_year)
    if search.received_before is not None:
        conditions.append(view.submitted_at < search.received_before)
    if search.waiting is not None:
        waits = view.awaiting_applicant_since
        conditions.append(waits.is_not(None) if search.waiting else waits.is_(None))
    return conditions


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _start_of(day: date) -> datetime:
    """Midnight in Japan: the hubs' days."""
    return datetime.combine(day, time.min, tzinfo=domain.JAPAN)


async def search_consultations(
    session: AsyncSession,
    hub: str,
    search: Search,
    *,
    sort: str = "submitted_at",
    descending: bool = True,
    after: tuple[Any, uuid.UUID] | None = None,
    limit: int = 50,
) -> Page:
    """One page of the hub's consultations that match, in the order asked; `after` is the previous
    page's last (sort value, id): keyset pagination, as fast on page 100 as on page 1."""
    view = tables.ConsultationView
    column = SORTS[sort]
    key = func.coalesce(column, _lowest(column))  # NULLs sort as the lowest value, in both directions
    statement = select(view).where(*_conditions(hub, search))
    if after is not None:
        value, last_id = after
        position = tuple_(key, view.id)
        statement = statement.where(position < (value, last_id) if descending else position > (value, last_id))
    order = (key.desc(), view.id.desc()) if descending else (key.asc(), view.id.asc())
    rows = list(await session.scalars(statement.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = None
    if more:
        last = rows[-1]
        value = getattr(last, sort)
        next_after = (value if value is not None else _lowest_value(column), last.id)
    return Page(rows, next_after)


def _lowest(column: Any) -> Any:
    return literal(_lowest_value(column), type_=column.type)


def _lowest_value(column: Any) -> Any:
    return datetime(1, 1, 1, tzinfo=UTC) if isinstance(column.type, DateTime) else ""


async def all_matching(session: AsyncSession, hub: str, search: Search, *, sort: str, descending: bool) -> Any:
    """Every consultation that matches, streamed in the list's order (CSV exports)."""
    view = tables.ConsultationView
    key = func.coalesce(SORTS[sort], _lowest(SORTS[sort]))
    order = (key.desc(), view.id.desc()) if descending else (key.asc(), view.id.asc())
    return await session.stream_scalars(
        select(view).where(*_conditions(hub, search)).order_by(*order).execution_options(yield_per=500)
    )


COUNTED: dict[str, Any] = {
    "status": tables.ConsultationView.status,
    "product_kind": tables.ConsultationView.product_kind,
    "development_stage": tables.ConsultationView.development_stage,
    "applicant_kind": tables.ConsultationView.applicant_kind,
    "prefecture": tables.ConsultationView.prefecture,
    "channel": tables.ConsultationView.channel,
}
"""The dimensions a fiscal year is counted by, besides topics (counted apart: one application carries several)."""


@dataclass(frozen=True, slots=True)
class YearCounts:
    """A hub's fiscal year: applications, and consultations by topic, in total, by month and by dimension."""

    fiscal_year: int
    applications: int
    topics: dict[str, int]
    by_month: dict[int, int]
    topics_by_month: dict[int, dict[str, int]]
    dimensions: dict[str, dict[str, int]]


async def count_year(session: AsyncSession, hub: str, fiscal_year: int) -> YearCounts:
    view = tables.ConsultationView
    where = (view.hub == hub, view.fiscal_year == fiscal_year)
    month = func.extract("month", func.timezone("Asia/Tokyo", view.submitted_at)).cast(Integer)
    by_month = {
        int(m): int(n) for m, n in await session.execute(select(month, func.count()).where(*where).group_by(month))
    }
    topic = func.unnest(view.topics).label("topic")
    topics_rows = (select(month.label("month"), topic).where(*where)).subquery()
    topics_by_month: dict[int, dict[str, int]] = {}
    for m, t, n in await session.execute(
        select(topics_rows.c.month, topics_rows.c.topic, func.count()).group_by(
            topics_rows.c.month, topics_rows.c.topic
        )
    ):
        topics_by_month.setdefault(int(m), {})[t] = int(n)
    totals: dict[str, int] = {}
    for counts in topics_by_month.values():
        for t, n in counts.items():
            totals[t] = totals.get(t, 0) + n
    dimensions: dict[str, dict[str, int]] = {}
    for name, column in COUNTED.items():
        rows = await session.execute(select(column, func.count()).where(*where).group_by(column))
        dimensions[name] = {value if value is not None else "": int(n) for value, n in rows}
    return YearCounts(fiscal_year, sum(by_month.values()), totals, by_month, topics_by_month, dimensions)


async def fiscal_years(session: AsyncSession, hub: str) -> list[int]:
    view = tables.ConsultationView
    rows = await session.scalars(
        select(view.fiscal_year)
        .where(view.hub == hub, view.fiscal_year.is_not(None))
        .distinct()
        .order_by(view.fiscal_year.desc())
    )
    return [year for year in rows if year is not None]


@dataclass(frozen=True, slots=True)
class Funnel:
    """How far a fiscal year's applications got, and how long screening took for each screened one."""

    submitted: int
    screened: int
    matched: int
    meeting: int
    closed: int
    screening_times: list[tuple[datetime, datetime]]
    first_contact_times: list[tuple[datetime, datetime]] = field(default_factory=list)
    """Received, and the first thing a member of staff recorded on it (screening, note or closure)."""
    match_times: list[tuple[datetime, datetime]] = field(default_factory=list)
    """Received, and experts proposed."""


STAFF_EVENTS = (
    ConsultationScreened.event_type,
    NoteAdded.event_type,
    ConsultationClosed.event_type,
)


async def funnel(session: AsyncSession, hub: str, fiscal_year: int) -> Funnel:
    view = tables.ConsultationView
    where = (view.hub == hub, view.fiscal_year == fiscal_year)
    row = (
        await session.execute(
            select(
                func.count(),
                func.count(view.screened_at),
                func.count(view.match_proposed_at),
                func.count().filter(view.status == domain.Status.MEETING_SCHEDULED.value),
                func.count(view.closed_at),
            ).where(*where)
        )
    ).one()
    times = await session.execute(
        select(view.submitted_at, view.screened_at).where(
            *where, view.screened_at.is_not(None), view.submitted_at.is_not(None)
        )
    )
    timeline = tables.TimelineEntry
    first = (
        select(timeline.consultation_id, func.min(timeline.occurred_at).label("at"))
        .where(timeline.hub == hub, timeline.event_type.in_(STAFF_EVENTS))
        .group_by(timeline.consultation_id)
        .subquery()
    )
    contacts = await session.execute(
        select(view.submitted_at, first.c.at).join(first, first.c.consultation_id == view.id).where(*where)
    )
    matches = await session.execute(
        select(view.submitted_at, view.match_proposed_at).where(*where, view.match_proposed_at.is_not(None))
    )
    submitted, screened, matched, meeting, closed = (int(n) for n in row)

    def pairs(rows: Any) -> list[tuple[datetime, datetime]]:
        return [(start, end) for start, end in rows if start is not None and end is not None]

    return Funnel(
        submitted,
        screened,
        matched,
        meeting,
        closed,
        screening_times=pairs(times),
        first_contact_times=pairs(contacts),
        match_times=pairs(matches),
    )


MAX_SAVED_VIEWS = 50


async def saved_views(session: AsyncSession, hub: str, owner: str) -> list[tables.SavedView]:
    rows = await session.scalars(
        select(tables.SavedView)
        .where(tables.SavedView.hub == hub, tables.SavedView.owner == owner)
        .order_by(tables.SavedView.name)
        .limit(MAX_SAVED_VIEWS)
    )
    return list(rows)


async def save_view(session: AsyncSession, *, hub: str, owner: str, name: str, query: str) -> None:
    """Save (or, under a name already used, replace) one of the member's views."""
    statement = insert(tables.SavedView).values(
        id=uuid.uuid4(), hub=hub, owner=owner, name=name, query=query, created_at=func.now()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["hub", "owner", "name"], set_={"query": statement.excluded.query, "created_at": func.now()}
        )
    )


async def delete_view(session: AsyncSession, *, hub: str, owner: str, view_id: uuid.UUID) -> None:
    await session.execute(
        delete(tables.SavedView).where(
            tables.SavedView.id == view_id, tables.SavedView.hub == hub, tables.SavedView.owner == owner
        )
    )
