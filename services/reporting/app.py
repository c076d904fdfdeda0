"""Reporting's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting import SERVICE, api, handlers, tables
from services.reporting.settings import ReportingSettings
from shared import auth
from shared.consumer import on
from shared.contract.consultation import (
    ConsentsChanged,
    ConsultationClosed,
    ConsultationScreened,
    ConsultationSubmitted,
    ConsultationSupplemented,
    ConsultationWithdrawn,
    DeliveryFailed,
    MatchProposed,
    NoteAdded,
    NotificationSent,
)
from shared.runtime import create_http_app, create_runtime


def create_app(settings: ReportingSettings) -> FastAPI:
    runtime = create_runtime(SERVICE, settings, tables.metadata)
    runtime.consume(
        on(ConsultationSubmitted, handlers.record_submissions),
        on(MatchProposed, handlers.record_match_proposals),
        on(NotificationSent, handlers.record_notifications),
        on(DeliveryFailed, handlers.record_delivery_failures),
        on(ConsultationWithdrawn, handlers.record_withdrawals),
        on(ConsultationScreened, handlers.record_screenings),
        on(NoteAdded, handlers.record_notes),
        on(ConsultationClosed, handlers.record_closures),
        on(ConsultationSupplemented, handlers.record_supplements),
        on(ConsentsChanged, handlers.record_consents),
    )
    router = api.create_router(runtime.sessions, auth_key=auth.verification_key(settings))
    return create_http_app(
        runtime, title="hubnet reporting", description="Read models, built from events.", routers=[router]
    )
