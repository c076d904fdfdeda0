"""Matching's composition root."""

from __future__ import annotations

import functools

from fastapi import FastAPI

from services.matching import SERVICE, api, handlers, tables
from services.matching.settings import MatchingSettings
from shared import auth
from shared.consumer import on
from shared.runtime import create_http_app, create_runtime


def create_app(settings: MatchingSettings) -> FastAPI:
    runtime = create_runtime(SERVICE, settings, tables.metadata)
    runtime.consume(
        on(handlers.Need, functools.partial(handlers.propose_matches, limit=settings.matching_max_candidates))
    )
    router = api.create_router(runtime.sessions, auth_key=auth.verification_key(settings))
    return create_http_app(
        runtime, title="hubnet matching", description="Screening and match proposals.", routers=[router]
    )
