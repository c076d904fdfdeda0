"""The shared vocabulary of consultations: the values only; their labels are in the catalogs (`shared.i18n.label`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

EmailAddress = Annotated[
    str,
    Field(
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        json_schema_extra={"format": "email"},
        description="Checked in full (email-validator) where it enters hubnet; events carry it as accepted",
    ),
]
"""An email address in an event. The edge that accepts it from a person validates it completely
(`EmailStr` in intake's API); consumers only check its shape, which costs them nothing per event."""


class Language(StrEnum):
    JA = "ja"
    EN = "en"


class Channel(StrEnum):
    PORTAL = "portal"
    API = "api"
    PHONE = "phone"
    EMAIL = "email"


class ApplicantKind(StrEnum):
    STARTUP = "startup"
    ACADEMIA = "academia"
    SME = "sme"
    LARGE_COMPANY = "large_company"
    INVESTOR = "investor"
    OTHER = "other"


class ProductKind(StrEnum):
    DRUG = "drug"
    MEDICAL_DEVICE = "medical_device"
    REGENERATIVE = "regenerative"
    SAMD = "samd"
    CARE_TECH = "care_tech"
    MEDICAL_DX_AI = "medical_dx_ai"
    DIAGNOSTICS = "diagnostics"
    HEALTHCARE_SERVICE = "healthcare_service"
    OTHER = "other"


class DevelopmentStage(StrEnum):
    BASIC_RESEARCH = "basic_research"
    APPLIED_RESEARCH = "applied_research"
    NON_CLINICAL = "non_clinical"
    CLINICAL = "clinical"
    COMMERCIALISATION = "commercialisation"
    BUSINESS_EXPANSION = "business_expansion"


class SupportField(StrEnum):
    """The expert fields of part-time supporters (非常勤サポーター), plus reimbursement."""

    REGULATION = "regulation"
    MARKETING = "marketing"
    BUSINESS_PLANNING = "business_planning"
    FUNDRAISING = "fundraising"
    MANAGEMENT_STRATEGY = "management_strategy"
    IP_STRATEGY = "ip_strategy"
    INTERNATIONAL_EXPANSION = "international_expansion"
    REIMBURSEMENT = "reimbursement"
