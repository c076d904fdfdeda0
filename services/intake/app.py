"""Intake's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from services.intake import SERVICE, api, tables
from services.intake.settings import IntakeSettings
from shared import auth
from shared.hubs import load_hubs
from shared.runtime import create_http_app, create_runtime


def create_app(settings: IntakeSettings) -> FastAPI:
    runtime = create_runtime(SERVICE, settings, tables.metadata)
    router = api.create_router(
        runtime.sessions,
        load_hubs(settings),
        auth_key=auth.verification_key(settings),
        on_commit=runtime.wake_relay,
    )
    # Intake keeps accepting consultations while Kafka is away: readiness needs only PostgreSQL.
    return create_http_app(
        runtime,
        title="hubnet intake",
        description="Consultations arrive here.",
        routers=[router],
        ready_needs_kafka=False,
    )
