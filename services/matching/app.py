"""Matching's composition root."""

from __future__ import annotations

import functools

from fastapi import FastAPI

from services.matching import api, handlers, tables
from services.matching.settings import MatchingSettings
from shared import auth
from shared.contract.consultation import ConsultationSubmitted
from shared.kafka import Subscription
from shared.service import create_http_app, create_runtime

GROUP = "hubnet.matching"


def create_app(settings: MatchingSettings) -> FastAPI:
    runtime = create_runtime("matching", settings, tables.metadata)
    runtime.subscribe(
        Subscription(
            GROUP,
            {
                ConsultationSubmitted: functools.partial(
                    handlers.propose_matches, limit=settings.matching_max_candidates
                )
            },
        )
    )
    router = api.create_router(runtime.sessions, auth_key=auth.verification_key(settings))
    return create_http_app(
        runtime, title="hubnet matching", description="Screening and match proposals.", routers=[router]
    )
