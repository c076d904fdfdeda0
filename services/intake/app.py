"""Intake's composition root."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.intake import SERVICE, api, attachments, portal, tables
from services.intake.pages import STATIC_DIR, Pages, install_refusals
from services.intake.settings import IntakeSettings
from services.intake.submissions import Submissions
from shared import auth
from shared.hubs import load_hubs
from shared.runtime import create_http_app, create_runtime


def create_app(settings: IntakeSettings) -> FastAPI:
    runtime = create_runtime(SERVICE, settings, tables.metadata)
    submissions = Submissions(
        runtime.sessions,
        load_hubs(settings),
        link_ttl=timedelta(days=settings.applicant_link_ttl_days),
        on_commit=runtime.wake_relay,
    )
    verification_key = auth.verification_key(settings)
    private = settings.auth_private_key.get_secret_value() if settings.auth_private_key else None
    router = api.create_router(
        submissions,
        sessions=runtime.sessions,
        auth_key=verification_key,
        signing_key=auth.issuer_key(private, settings.auth_private_key_file, verified_with=verification_key),
        token_ttl=timedelta(hours=settings.staff_token_ttl_hours),
        public_url=settings.public_url,
    )
    pages = Pages(settings.public_url)
    the_portal = portal.Portal(
        submissions,
        runtime.sessions,
        attachments.FilesystemStore(settings.intake_attachments_dir),
        pages,
        min_fill_s=settings.portal_min_fill_s,
    )
    # Intake keeps accepting consultations while Kafka is away: readiness needs only PostgreSQL.
    app = create_http_app(
        runtime,
        title="hubnet intake",
        description="Consultations arrive here.",
        routers=[router, portal.create_router(the_portal)],
        ready_needs_kafka=False,
        larger_bodies={"/portal/": settings.intake_max_upload_bytes},
    )
    install_refusals(app, pages)
    app.mount("/portal/static", StaticFiles(directory=STATIC_DIR), name="portal-static")
    return app
