"""Reporting's HTTP routes: a hub's staff read their own consultations, never another hub's."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting import repository, tables
from shared.auth import Action, PublicKey, StaffPrincipal
from shared.http import not_found, problems, staff_may


class TimelineItem(BaseModel):
    event_id: uuid.UUID
    type: str
    source: str
    time: datetime


class ConsultationSummary(BaseModel):
    id: uuid.UUID
    hub: str
    status: str
    submitted_at: datetime | None
    organization: str | None
    title: str | None
    topics: list[str] | None
    language: str | None


class ConsultationDetail(ConsultationSummary):
    channel: str | None
    applicant_kind: str | None
    product_kind: str | None
    development_stage: str | None
    contact_name: str | None
    email: str | None
    body: str | None
    match_candidates: list[dict[str, Any]] | None
    match_proposed_at: datetime | None
    acknowledged_at: datetime | None
    withdrawn_at: datetime | None
    updated_at: datetime
    timeline: list[TimelineItem]


def _summary_fields(view: tables.ConsultationView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in ConsultationSummary.model_fields}


def create_router(sessions: async_sessionmaker[AsyncSession], *, auth_key: PublicKey) -> APIRouter:
    router = APIRouter(prefix="/v1/hubs/{hub}/consultations", tags=["consultations"])
    reader = staff_may(auth_key, Action.READ)

    async def own_hub(hub: str, _: Annotated[StaffPrincipal, Depends(reader)]) -> str:
        return hub  # another hub's staff got 404 from `staff_may`, learning nothing

    @router.get(
        "",
        response_model=list[ConsultationSummary],
        summary="The hub's consultations, newest first",
        responses=problems(401, 404, 422),
    )
    async def list_consultations(
        hub: Annotated[str, Depends(own_hub)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> list[ConsultationSummary]:
        async with sessions() as session:
            views = await repository.list_consultations(session, hub, limit=limit, offset=offset)
        return [ConsultationSummary(**_summary_fields(view)) for view in views]

    @router.get(
        "/{consultation_id}",
        response_model=ConsultationDetail,
        summary="One consultation with its timeline",
        responses=problems(401, 404, 422),
    )
    async def get_consultation(hub: Annotated[str, Depends(own_hub)], consultation_id: uuid.UUID) -> ConsultationDetail:
        async with sessions() as session:
            record = await repository.get_by_id(session, hub, consultation_id)
        if record is None:
            raise not_found("Consultation not found")
        view = record.view
        detail = {name: getattr(view, name) for name in ConsultationDetail.model_fields if name != "timeline"}
        timeline = [
            TimelineItem(event_id=e.event_id, type=e.event_type, source=e.source, time=e.occurred_at)
            for e in record.timeline
        ]
        return ConsultationDetail(**detail, timeline=timeline)

    return router
