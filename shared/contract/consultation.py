"""v1 payloads of the consultation lifecycle. Personal data sits only under `personal`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contract.envelope import EventData
from shared.contract.topics import consultations
from shared.contract.vocabulary import (
    CORPORATE_NUMBER_PATTERN,
    ApplicantKind,
    Channel,
    DevelopmentStage,
    EmailAddress,
    Language,
    MeetingFormat,
    Outcome,
    OutOfScopeReason,
    Prefecture,
    ProductKind,
    ScreeningDecision,
    SupportField,
)

KATAKANA_PATTERN = r"^[\u30a1-\u30f6\u30fb\u30fc\u3000 ]+$"


class CoResearcher(BaseModel):
    """共同研究者: a person or institution working with the applicant on the product."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=200)
    affiliation: str | None = Field(default=None, max_length=300)


class ApplicantPersonal(BaseModel):
    """Contact details and free text: what may be kept off partner topics, encrypted or erased."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    contact_name: str = Field(min_length=1, max_length=200)
    email: EmailAddress
    phone: str | None = Field(default=None, max_length=40)
    body: str = Field(min_length=1, max_length=20_000, description="相談内容: the question in the applicant's words")
    family_name: str | None = Field(default=None, max_length=100, description="姓")
    given_name: str | None = Field(default=None, max_length=100, description="名")
    family_name_kana: str | None = Field(default=None, max_length=100, pattern=KATAKANA_PATTERN, description="セイ")
    given_name_kana: str | None = Field(default=None, max_length=100, pattern=KATAKANA_PATTERN, description="メイ")
    co_researchers: tuple[CoResearcher, ...] = ()
    applicant_link_token: str | None = Field(
        default=None,
        max_length=100,
        description="The secret of the applicant's own page (expiring, revocable at intake), for the acknowledgement",
    )


class Consents(BaseModel):
    """What the applicant agreed to; sharing is per hub and can be revoked later."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    contact_by_email: bool = Field(description="The hub may write to the applicant about the consultation")
    share_with: tuple[str, ...] = Field(
        default=(), description="Hubs (ids) the case may be referred to, with what the applicant wrote"
    )


class Attachment(BaseModel):
    """A file's metadata; the file stays in intake's storage."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    attachment_id: uuid.UUID
    filename: str = Field(min_length=1, max_length=255)
    media_type: str = Field(max_length=100)
    size: int = Field(ge=1, le=10 * 1024 * 1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


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
    # Optional since the full record (相談カルテ): events from before it carry none of them.
    reference: str | None = Field(default=None, max_length=40, description="受付番号: what the applicant quotes")
    corporate_number: str | None = Field(
        default=None, pattern=CORPORATE_NUMBER_PATTERN, description="法人番号 (check digit validated by intake)"
    )
    prefecture: Prefecture | None = Field(default=None, description="JIS X 0401 code")
    product_name: str | None = Field(default=None, max_length=300)
    meeting_format: MeetingFormat | None = None
    consents: Consents | None = None
    attachments: tuple[Attachment, ...] = ()
    entered_by: str | None = Field(
        default=None, description="The staff member who entered it (phone, email, event, Open Hours)"
    )
    open_hours_slot: datetime | None = Field(
        default=None, description="The Open Hours slot booked (a weekday, 10:00 or 11:00 Japan time)"
    )
    possible_duplicates: tuple[uuid.UUID, ...] = Field(
        default=(),
        description="Earlier consultations at the hub within 30 days with the same corporate number or email "
        "and the same product: flagged for staff, never merged",
    )


WithdrawalReason = Literal["applicant_request", "duplicate", "other"]


class ConsultationWithdrawn(ConsultationEvent):
    event_type: ClassVar[str] = "hubnet.consultation.withdrawn.v1"

    withdrawn_at: datetime
    reason: WithdrawalReason
    recorded_by: str = Field(
        min_length=1, description="The staff member who recorded it, or `applicant` from the applicant's own page"
    )


APPLICANT = "applicant"
"""The actor of what the applicant does on their own page (withdraw, add information, change consents)."""


class SupplementPersonal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    note: str | None = Field(default=None, max_length=20_000, description="What the applicant added, in their words")


class ConsultationSupplemented(ConsultationEvent):
    """The applicant added information or files from their own page."""

    event_type: ClassVar[str] = "hubnet.consultation.supplemented.v1"

    supplemented_at: datetime
    attachments: tuple[Attachment, ...] = ()
    personal: SupplementPersonal


class ConsentsChanged(ConsultationEvent):
    """The applicant (or staff on their request) changed what they agreed to; the new consents replace the old."""

    event_type: ClassVar[str] = "hubnet.consultation.consents_changed.v1"

    changed_at: datetime
    consents: Consents
    changed_by: str = Field(min_length=1, description="`applicant`, or the staff member who recorded it")


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


class ConsultationScreened(ConsultationEvent):
    """A full-time supporter screened it (相談内容精査): taken on, or out of scope with a reason code."""

    event_type: ClassVar[str] = "hubnet.consultation.screened.v1"

    screened_at: datetime
    decision: ScreeningDecision
    reason: OutOfScopeReason | None = Field(default=None, description="With `out_of_scope`: why")
    recorded_by: str = Field(min_length=1)


class NotePersonal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str = Field(min_length=1, max_length=20_000)


class NoteAdded(ConsultationEvent):
    """A staff member's note on the record; its text may name people, so it sits under `personal`."""

    event_type: ClassVar[str] = "hubnet.consultation.note_added.v1"

    note_id: uuid.UUID
    noted_at: datetime
    recorded_by: str = Field(min_length=1)
    personal: NotePersonal
    awaits_applicant: bool = Field(
        default=False,
        description="The member has asked the applicant for something: the consultation waits on them until "
        "they add information",
    )


class ConsultationClosed(ConsultationEvent):
    event_type: ClassVar[str] = "hubnet.consultation.closed.v1"

    closed_at: datetime
    outcome: Outcome
    recorded_by: str = Field(min_length=1)
