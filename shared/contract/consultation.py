"""v1 payloads of the consultation lifecycle. Personal data sits only under `personal`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contract.envelope import EventData
from shared.contract.topics import consultations
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    EmailAddress,
    Language,
    ProductKind,
    SupportField,
)


class ApplicantPersonal(BaseModel):
    """Contact details and free text: what may be kept off partner topics, encrypted or erased."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    contact_name: str = Field(min_length=1, max_length=200)
    email: EmailAddress
    phone: str | None = Field(default=None, max_length=40)
    body: str = Field(min_length=1, max_length=20_000, description="相談内容: the question in the applicant's words")


class ConsultationEvent(EventData):
    """An event about one consultation: keyed by its id, on its hub's consultation topic, so that
    every consumer sees a consultation's history in order whichever service produced each event."""

    consultation_id: uuid.UUID

    @property
    def subject(self) -> str:
        return str(self.consultation_id)

    def topic(self, hub: str) -> str:
        return consultations(hub)


class ConsultationSubmitted(ConsultationEvent):
    event_type: ClassVar[str] = "hubnet.consultation.submitted.v1"

    hub: str
    submitted_at: datetime
    channel: Channel
    language: Language
    applicant_kind: ApplicantKind
    organization: str = Field(min_length=1, max_length=300, description="事業者: company or institution")
    title: str = Field(min_length=1, max_length=300)
    product_kind: ProductKind
    development_stage: DevelopmentStage
    topics: tuple[SupportField, ...] = Field(min_length=1)
    consent_to_share: bool = Field(
        default=False, description="The applicant agrees that the case may be referred to another hub"
    )
    personal: ApplicantPersonal


WithdrawalReason = Literal["applicant_request", "duplicate", "other"]


class ConsultationWithdrawn(ConsultationEvent):
    event_type: ClassVar[str] = "hubnet.consultation.withdrawn.v1"

    withdrawn_at: datetime
    reason: WithdrawalReason
    recorded_by: str = Field(min_length=1, description="The staff member who recorded it")


class MatchCandidate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    supporter_id: str
    display_name: str
    fields: tuple[SupportField, ...]
    languages: tuple[Language, ...]
    score: float = Field(ge=0)


class MatchProposed(ConsultationEvent):
    event_type: ClassVar[str] = "hubnet.match.proposed.v1"

    proposed_at: datetime
    rule: str = Field(description="Name and version of the rule that ranked the candidates")
    candidates: tuple[MatchCandidate, ...]


class NotificationSent(ConsultationEvent):
    event_type: ClassVar[str] = "hubnet.notification.sent.v1"

    notification_id: uuid.UUID
    sent_at: datetime
    channel: Literal["email", "webhook"]
    template: str
    recipient_role: Literal["applicant", "supporter", "hub"]
    language: Language


class DeliveryFailed(ConsultationEvent):
    """Notify gave a delivery up: permanently refused, or still failing at its deadline. Carries no
    address and no message text, only what an operator needs to follow up."""

    event_type: ClassVar[str] = "hubnet.notification.delivery_failed.v1"

    notification_id: uuid.UUID
    failed_at: datetime
    channel: Literal["email", "webhook"]
    template: str
    recipient_role: Literal["applicant", "supporter", "hub"]
    attempts: int = Field(ge=1)
    permanent: bool = Field(description="Refused outright (e.g. SMTP 5xx), not timed out after retries")
    reason: str = Field(max_length=500, description="The last error's type and code, never its values")
