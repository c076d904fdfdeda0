"""Taking a consultation in, whatever the channel: one transaction, one answer, idempotent on request."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import handlers, record
from shared import db, errors
from shared.contract.consultation import Attachment, ConsultationSubmitted
from shared.contract.vocabulary import Channel
from shared.hubs import Hub
from shared.observability import correlation_id

OPEN_HOURS_SLOT_KEY = "uq_consultations_open_hours_slot"


@dataclass(frozen=True, slots=True)
class Receipt:
    consultation_id: uuid.UUID
    reference: str | None
    link_token: str
    created: bool


def request_sha256(request: record.ConsultationRequest) -> str:
    # Of the validated request, serialised field by field: the same submission hashes alike whatever
    # its JSON spacing or key order.
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


def current_correlation() -> uuid.UUID:
    value = correlation_id.get()
    try:
        return uuid.UUID(value) if value else uuid.uuid4()
    except ValueError:
        return uuid.uuid4()


class Submissions:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hubs: Mapping[str, Hub],
        *,
        link_ttl: timedelta,
        on_commit: Callable[[], None],
    ) -> None:
        self.sessions = sessions
        self._one_statement = db.autocommitting(sessions)
        self.hubs = hubs
        self.link_ttl = link_ttl
        self.on_commit = on_commit

    def check_hubs(self, request: record.ConsultationRequest) -> None:
        """422 at each `share_with` entry naming no hub of the network."""
        unknown = record.unknown_hubs(request, self.hubs)
        if unknown:
            raise RequestValidationError(
                [
                    {"type": "unknown_hub", "loc": ("body", "share_with", index), "msg": "No such hub", "input": None}
                    for index in unknown
                ]
            )

    async def submit(
        self,
        request: record.ConsultationRequest,
        *,
        hub: str,
        channel: Channel,
        idempotency_key: str | None,
        attachments: Sequence[Attachment] = (),
        entered_by: str | None = None,
        open_hours_slot: datetime | None = None,
    ) -> Receipt:
        """Store and publish the consultation; `handlers.IdempotencyKeyReused` for a key used with another
        request. A repeated request (same key, same content) answers the first consultation, with a new link."""
        self.check_hubs(request)
        token = handlers.new_link_token()
        submitted = record.to_submitted(
            request,
            hub=hub,
            hubs=self.hubs,
            channel=channel,
            submitted_at=datetime.now(UTC),
            attachments=attachments,
            applicant_link_token=token,
            entered_by=entered_by,
            open_hours_slot=open_hours_slot,
        )
        key = None if idempotency_key is None else handlers.IdempotencyKey(idempotency_key, request_sha256(request))
        consultation_id, created = await self._store(submitted, key)
        if created:
            self.on_commit()
            return Receipt(consultation_id, submitted.reference, token, created=True)
        async with self.sessions.begin() as session:
            token = await handlers.issue_link(session, consultation_id, ttl=self.link_ttl)
            reference = await handlers.reference_of(session, consultation_id)
        return Receipt(consultation_id, reference, token, created=False)

    async def _store(
        self, submitted: ConsultationSubmitted, key: handlers.IdempotencyKey | None
    ) -> tuple[uuid.UUID, bool]:
        # Without attachments the submission writes in one statement (`repository.save_submission`), which
        # commits on its own: no BEGIN and COMMIT round trips (four a submission became two). Attachments
        # are a second statement, so those submissions take a transaction.
        sessions = self.sessions if submitted.attachments else self._one_statement
        try:
            async with sessions.begin() as session:
                return await handlers.submit_consultation(
                    session,
                    submitted,
                    correlation_id=current_correlation(),
                    idempotency_key=key,
                    link_ttl=self.link_ttl,
                )
        except IntegrityError as error:
            if errors.constraint(error) == OPEN_HOURS_SLOT_KEY:
                raise handlers.SlotTaken(submitted.open_hours_slot) from error
            # A concurrent request with the same key committed first: answer as it was answered.
            if key is None:
                raise
            async with self.sessions() as session:
                earlier = await handlers.earlier_submission(session, submitted.hub, key)
            if earlier is None:
                raise
            return earlier, False
