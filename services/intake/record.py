"""The consultation record (相談カルテ) as a person gives it: one model for the API, the portal and staff entry."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Final, Literal, Self, TypeVar
from zoneinfo import ZoneInfo

import holidays
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.intake import domain
from shared.contract.consultation import (
    KATAKANA_PATTERN,
    ApplicantPersonal,
    Attachment,
    Consents,
    ConsultationSubmitted,
    CoResearcher,
)
from shared.contract.vocabulary import (
    CORPORATE_NUMBER_PATTERN,
    ApplicantKind,
    Channel,
    DevelopmentStage,
    Language,
    MeetingFormat,
    Prefecture,
    ProductKind,
    SupportField,
    corporate_number_is_valid,
)
from shared.http import EmailInput, MultiLineText, SingleLineText, matching


def _check_digit(value: str) -> str:
    if not corporate_number_is_valid(value):
        raise PydanticCustomError("corporate_number", "The check digit does not match")
    return value


CorporateNumber = Annotated[str, *matching(CORPORATE_NUMBER_PATTERN, "corporate_number"), AfterValidator(_check_digit)]
"""法人番号: 13 digits whose first is the check digit of the other twelve."""

Katakana = Annotated[SingleLineText, *matching(KATAKANA_PATTERN, "katakana"), Field(max_length=100)]
PHONE_PATTERN = r"^\+?[0-9][0-9 ()\-]{5,38}[0-9]$"
Phone = Annotated[SingleLineText, *matching(PHONE_PATTERN, "phone"), Field(max_length=40)]
HubId = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class CoResearcherInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SingleLineText = Field(min_length=1, max_length=200)
    affiliation: SingleLineText | None = Field(default=None, max_length=300)


CONTACT_NAMED: Final[list[JsonValue]] = [
    {"required": ["contact_name"], "properties": {"contact_name": {"type": "string"}}},
    {
        "required": ["family_name", "given_name"],
        "properties": {"family_name": {"type": "string"}, "given_name": {"type": "string"}},
    },
]


class ConsultationRequest(BaseModel):
    """What an applicant sends; the hub comes from the path, the id and time from intake.

    The contact person is `contact_name`, or `family_name` and `given_name` (姓・名) from which it is
    composed. Sharing with other hubs is `share_with` (hub ids, one consent per agency); the older
    `consent_to_share: true` without a list means any hub of the network.
    """

    model_config = ConfigDict(
        extra="forbid",
        # The one rule over several fields, stated for clients and generated tests: a contact person named.
        json_schema_extra={"anyOf": CONTACT_NAMED},
    )

    language: Language = Language.JA
    applicant_kind: ApplicantKind
    organization: SingleLineText = Field(min_length=1, max_length=300)
    corporate_number: CorporateNumber | None = None
    prefecture: Prefecture | None = None
    title: SingleLineText = Field(min_length=1, max_length=300, description="相談概要: the question in one line")
    product_name: SingleLineText | None = Field(default=None, max_length=300)
    product_kind: ProductKind
    development_stage: DevelopmentStage
    topics: list[SupportField] = Field(min_length=1, max_length=len(SupportField))
    meeting_format: MeetingFormat | None = None
    consent_to_share: StrictBool = False
    share_with: list[HubId] | None = Field(default=None, max_length=50)
    consent_to_contact_by_email: StrictBool = True
    contact_name: SingleLineText | None = Field(default=None, min_length=1, max_length=200)
    family_name: SingleLineText | None = Field(default=None, min_length=1, max_length=100)
    given_name: SingleLineText | None = Field(default=None, min_length=1, max_length=100)
    family_name_kana: Katakana | None = None
    given_name_kana: Katakana | None = None
    email: EmailInput
    phone: Phone | None = None
    body: MultiLineText = Field(min_length=1, max_length=20_000, description="相談内容: the details")
    co_researchers: list[CoResearcherInput] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _named(self) -> Self:
        if self.contact_name is None and (self.family_name is None or self.given_name is None):
            missing = "family_name" if self.family_name is None else "given_name"
            raise _field_error(missing, "missing", "Give contact_name, or family_name and given_name")
        return self

    @property
    def full_name(self) -> str:
        if self.contact_name is not None:
            return self.contact_name
        return f"{self.family_name} {self.given_name}"


M = TypeVar("M", bound=ConsultationRequest)


def request_model(hub_ids: Sequence[str], base: type[M]) -> type[M]:
    """`base` whose `share_with` lists the configured hubs, so that the OpenAPI names them."""
    hub_id = Literal[tuple(hub_ids)]  # type: ignore[valid-type]
    return create_model(
        base.__name__,
        __base__=base,
        __doc__=base.__doc__,
        share_with=(list[hub_id] | None, Field(default=None, max_length=len(hub_ids))),  # type: ignore[valid-type,arg-type]
    )


JAPAN: Final = ZoneInfo("Asia/Tokyo")
_HOLIDAYS: Final = holidays.country_holidays("JP")


def open_hours_slot_problem(slot: datetime) -> str | None:
    """Why `slot` is not an Open Hours slot (a weekday that is not a public holiday, at 10:00 or 11:00
    Japan time), or None when it is one."""
    local = slot.astimezone(JAPAN)
    if local.weekday() >= 5 or local.date() in _HOLIDAYS:
        return "Open Hours are held on weekdays that are not public holidays"
    if (local.hour, local.minute) not in domain.OPEN_HOURS_TIMES or local.second or local.microsecond:
        return "Open Hours slots start at 10:00 or 11:00 Japan time"
    return None


class StaffEntryRequest(ConsultationRequest):
    """A consultation a staff member enters: received by phone, by email, at an event, or booked for Open
    Hours (then `open_hours_slot` is the slot, and no documents are needed)."""

    model_config = ConfigDict(
        extra="forbid",
        # A slot with Open Hours, and only then (its weekday and hour are checked beyond the schema).
        json_schema_extra={
            "anyOf": CONTACT_NAMED,
            "if": {"properties": {"channel": {"const": "open_hours"}}, "required": ["channel"]},
            "then": {"required": ["open_hours_slot"], "properties": {"open_hours_slot": {"type": "string"}}},
            "else": {"properties": {"open_hours_slot": {"type": "null"}}},
        },
    )

    channel: Literal[Channel.PHONE, Channel.EMAIL, Channel.EVENT, Channel.OPEN_HOURS]
    open_hours_slot: AwareDatetime | None = Field(
        default=None, description="With channel `open_hours`: the slot, a weekday at 10:00 or 11:00 Japan time"
    )

    @model_validator(mode="after")
    def _slot(self) -> Self:
        if self.channel is Channel.OPEN_HOURS:
            if self.open_hours_slot is None:
                raise _field_error("open_hours_slot", "missing", "An Open Hours entry needs its slot")
            problem = open_hours_slot_problem(self.open_hours_slot)
            if problem is not None:
                raise _field_error("open_hours_slot", "open_hours_slot", problem)
        elif self.open_hours_slot is not None:
            raise _field_error("open_hours_slot", "open_hours_only", "Only an Open Hours entry has a slot")
        return self


class PortalConsultation(ConsultationRequest):
    """The portal's form asks for 姓 and 名 apart (so that a person sees both errors at once)."""

    family_name: SingleLineText = Field(min_length=1, max_length=100)
    given_name: SingleLineText = Field(min_length=1, max_length=100)


def _field_error(field: str, kind: str, message: str) -> PydanticCustomError:
    # A model-level error located at one field: pydantic puts the error at the model, so the location
    # is carried in the context and moved by `relocate` in the error handler.
    return PydanticCustomError(kind, message, {"field": field})


def consents(request: ConsultationRequest, hubs: Mapping[str, object], hub: str) -> Consents:
    """Per-agency consent: the hubs named, or every other hub for the older all-or-nothing flag."""
    if request.share_with is not None:
        share_with: Sequence[str] = tuple(dict.fromkeys(request.share_with))
    elif request.consent_to_share:
        share_with = tuple(other for other in hubs if other != hub)
    else:
        share_with = ()
    return Consents(contact_by_email=request.consent_to_contact_by_email, share_with=tuple(share_with))


def unknown_hubs(request: ConsultationRequest, hubs: Mapping[str, object]) -> list[int]:
    """Positions in `share_with` of ids that name no hub."""
    return [index for index, hub in enumerate(request.share_with or ()) if hub not in hubs]


def to_submitted(
    request: ConsultationRequest,
    *,
    hub: str,
    hubs: Mapping[str, object],
    channel: Channel,
    submitted_at: datetime,
    attachments: Sequence[Attachment] = (),
    applicant_link_token: str | None = None,
    entered_by: str | None = None,
    open_hours_slot: datetime | None = None,
) -> ConsultationSubmitted:
    consultation_id = uuid.uuid4()
    agreed = consents(request, hubs, hub)
    return ConsultationSubmitted(
        consultation_id=consultation_id,
        hub=hub,
        submitted_at=submitted_at,
        channel=channel,
        language=request.language,
        applicant_kind=request.applicant_kind,
        organization=request.organization,
        title=request.title,
        product_kind=request.product_kind,
        development_stage=request.development_stage,
        topics=tuple(dict.fromkeys(request.topics)),
        consent_to_share=bool(agreed.share_with),
        personal=ApplicantPersonal(
            contact_name=request.full_name,
            email=request.email,
            phone=request.phone,
            body=request.body,
            family_name=request.family_name,
            given_name=request.given_name,
            family_name_kana=request.family_name_kana,
            given_name_kana=request.given_name_kana,
            co_researchers=tuple(
                CoResearcher(name=person.name, affiliation=person.affiliation) for person in request.co_researchers
            ),
            applicant_link_token=applicant_link_token,
        ),
        reference=domain.reference(hub, consultation_id),
        corporate_number=request.corporate_number,
        prefecture=request.prefecture,
        product_name=request.product_name,
        meeting_format=request.meeting_format,
        consents=agreed,
        attachments=tuple(attachments),
        entered_by=entered_by,
        open_hours_slot=open_hours_slot,
    )
