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
    """How a consultation reached the hub: the applicant's own (portal, API) or entered by staff."""

    PORTAL = "portal"
    API = "api"
    PHONE = "phone"
    EMAIL = "email"
    EVENT = "event"
    OPEN_HOURS = "open_hours"


STAFF_CHANNELS: frozenset[Channel] = frozenset({Channel.PHONE, Channel.EMAIL, Channel.EVENT, Channel.OPEN_HOURS})
"""The channels of a consultation staff enter on the applicant's behalf."""


class ApplicantKind(StrEnum):
    STARTUP = "startup"
    ACADEMIA = "academia"
    INDIVIDUAL_RESEARCHER = "individual_researcher"
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
    """The expert fields of part-time supporters (非常勤サポーター), plus reimbursement, and the desks of
    PMDA's SaMD one-stop window (医療機器プログラム総合相談), which routes one application to up to three:
    whether the product is a medical device (該当性), its development (開発), insurance (医療保険:
    `REIMBURSEMENT`). Values are only ever added, consumers first."""

    REGULATION = "regulation"
    MARKETING = "marketing"
    BUSINESS_PLANNING = "business_planning"
    FUNDRAISING = "fundraising"
    MANAGEMENT_STRATEGY = "management_strategy"
    IP_STRATEGY = "ip_strategy"
    INTERNATIONAL_EXPANSION = "international_expansion"
    REIMBURSEMENT = "reimbursement"
    DEVICE_APPLICABILITY = "device_applicability"
    DEVELOPMENT_ADVICE = "development_advice"


class MeetingFormat(StrEnum):
    """How the applicant would like to meet: Open Hours are the light weekday 10:00 and 11:00 slots."""

    ONLINE = "online"
    IN_PERSON = "in_person"
    OPEN_HOURS = "open_hours"


class Prefecture(StrEnum):
    """The 47 prefectures by their JIS X 0401 code."""

    HOKKAIDO = "01"
    AOMORI = "02"
    IWATE = "03"
    MIYAGI = "04"
    AKITA = "05"
    YAMAGATA = "06"
    FUKUSHIMA = "07"
    IBARAKI = "08"
    TOCHIGI = "09"
    GUNMA = "10"
    SAITAMA = "11"
    CHIBA = "12"
    TOKYO = "13"
    KANAGAWA = "14"
    NIIGATA = "15"
    TOYAMA = "16"
    ISHIKAWA = "17"
    FUKUI = "18"
    YAMANASHI = "19"
    NAGANO = "20"
    GIFU = "21"
    SHIZUOKA = "22"
    AICHI = "23"
    MIE = "24"
    SHIGA = "25"
    KYOTO = "26"
    OSAKA = "27"
    HYOGO = "28"
    NARA = "29"
    WAKAYAMA = "30"
    TOTTORI = "31"
    SHIMANE = "32"
    OKAYAMA = "33"
    HIROSHIMA = "34"
    YAMAGUCHI = "35"
    TOKUSHIMA = "36"
    KAGAWA = "37"
    EHIME = "38"
    KOCHI = "39"
    FUKUOKA = "40"
    SAGA = "41"
    NAGASAKI = "42"
    KUMAMOTO = "43"
    OITA = "44"
    MIYAZAKI = "45"
    KAGOSHIMA = "46"
    OKINAWA = "47"


class ScreeningDecision(StrEnum):
    ACCEPTED = "accepted"  # the hub takes it on
    OUT_OF_SCOPE = "out_of_scope"


class OutOfScopeReason(StrEnum):
    """Why a hub does not take a consultation on (reason codes for reports)."""

    NOT_HEALTHCARE = "not_healthcare"
    BETTER_AT_ANOTHER_HUB = "better_at_another_hub"
    INSUFFICIENT_INFORMATION = "insufficient_information"
    NOT_SUPPORT_SCOPE = "not_support_scope"
    OTHER = "other"


class Outcome(StrEnum):
    """How a handled consultation ended."""

    ADVICE_GIVEN = "advice_given"
    MATCHED_WITH_EXPERT = "matched_with_expert"
    REFERRED = "referred"
    NO_RESPONSE = "no_response"
    OTHER = "other"


CORPORATE_NUMBER_PATTERN = r"^[1-9][0-9]{12}$"


def check_digit(base: str) -> int:
    """The check digit of a corporate number's other twelve digits."""
    total = sum(int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(base), start=1))
    return 9 - total % 9


def corporate_number_is_valid(number: str) -> bool:
    """法人番号: 13 digits, the first a check digit over the other twelve (National Tax Agency's rule:
    9 - (Σ Pn × Qn mod 9), Pn the n-th digit from the right, Qn 1 for odd n and 2 for even)."""
    if len(number) != 13 or not number.isascii() or not number.isdigit():
        return False
    return int(number[0]) == check_digit(number[1:])
