"""Reporting's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting import api, handlers, tables
from services.reporting.settings import ReportingSettings
from shared import auth
from shared.contract.consultation import (
    ConsultationSubmitted,
    ConsultationWithdrawn,
    MatchProposed,
    NotificationSent,
)
from shared.kafka import Subscription
from shared.service import create_http_app, create_runtime

GROUP = "hubnet.reporting"


def create_app(settings: ReportingSettings) -> FastAPI:
    runtime = create_runtime("reporting", settings, tables.metadata)
    runtime.subscribe(
        Subscription(
            GROUP,
            {
                ConsultationSubmitted: handlers.record_submission,
                MatchProposed: handlers.record_match_proposal,
                NotificationSent: handlers.record_notification,
                ConsultationWithdrawn: handlers.record_withdrawal,
            },
        )
    )
    router = api.create_router(runtime.sessions, auth_key=auth.verification_key(settings))
    return create_http_app(
        runtime, title="hubnet reporting", description="Read models, built from events.", routers=[router]
    )
