"""Reporting's composition root."""

from __future__ import annotations

from fastapi import FastAPI

from services.reporting import SERVICE, api, console, handlers, tables
from services.reporting.settings import ReportingSettings
from shared import auth
from shared.hubs import load_hubs
from shared.runtime import create_http_app, create_runtime

ROUTES = handlers.ROUTES


def create_app(settings: ReportingSettings) -> FastAPI:
    runtime = create_runtime(SERVICE, settings, tables.metadata)
    runtime.consume(*ROUTES)
    auth_key = auth.verification_key(settings)
    router = api.create_router(runtime.sessions, auth_key=auth_key)
    app = create_http_app(
        runtime, title="hubnet reporting", description="Read models, built from events.", routers=[router]
    )
    console.install(
        app,
        console.Console(
            sessions=runtime.sessions,
            auth_key=auth_key,
            hubs=load_hubs(settings),
            intake_url=settings.intake_url,
            secure_cookies=settings.public_url.startswith("https://"),
        ),
        vendor_dir=settings.reporting_vendor_dir,
    )
    return app
