"""The shared vocabulary of consultations, with Japanese and English labels (from the hubs' own terms)."""

from __future__ import annotations

from enum import StrEnum


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


LABELS: dict[StrEnum, tuple[str, str]] = {
    Language.JA: ("日本語", "Japanese"),
    Language.EN: ("英語", "English"),
    Channel.PORTAL: ("ポータル", "Portal"),
    Channel.API: ("API", "API"),
    Channel.PHONE: ("電話", "Phone"),
    Channel.EMAIL: ("メール", "Email"),
    ApplicantKind.STARTUP: ("ベンチャー・スタートアップ", "Startup"),
    ApplicantKind.ACADEMIA: ("アカデミア", "Academia"),
    ApplicantKind.SME: ("中小企業", "SME"),
    ApplicantKind.LARGE_COMPANY: ("大企業", "Large company"),
    ApplicantKind.INVESTOR: ("投資家", "Investor"),
    ApplicantKind.OTHER: ("その他", "Other"),
    ProductKind.DRUG: ("医薬品", "Drug"),
    ProductKind.MEDICAL_DEVICE: ("医療機器", "Medical device"),
    ProductKind.REGENERATIVE: ("再生医療等製品", "Regenerative-medicine product"),
    ProductKind.SAMD: ("プログラム医療機器", "Software as a medical device"),
    ProductKind.CARE_TECH: ("介護テック", "Care tech"),
    ProductKind.MEDICAL_DX_AI: ("医療DX・AI", "Medical DX / AI"),
    ProductKind.DIAGNOSTICS: ("診断薬・検査", "Diagnostics"),
    ProductKind.HEALTHCARE_SERVICE: ("ヘルスケアサービス", "Healthcare service"),
    ProductKind.OTHER: ("その他", "Other"),
    DevelopmentStage.BASIC_RESEARCH: ("基礎研究", "Basic research"),
    DevelopmentStage.APPLIED_RESEARCH: ("応用研究", "Applied research"),
    DevelopmentStage.NON_CLINICAL: ("非臨床", "Non-clinical"),
    DevelopmentStage.CLINICAL: ("臨床研究・治験", "Clinical research / trials"),
    DevelopmentStage.COMMERCIALISATION: ("実用化", "Commercialisation"),
    DevelopmentStage.BUSINESS_EXPANSION: ("事業展開", "Business expansion"),
    SupportField.REGULATION: ("法規制対応", "Regulation"),
    SupportField.MARKETING: ("マーケティング", "Marketing"),
    SupportField.BUSINESS_PLANNING: ("事業計画", "Business planning"),
    SupportField.FUNDRAISING: ("資金調達", "Fundraising"),
    SupportField.MANAGEMENT_STRATEGY: ("経営戦略", "Management strategy"),
    SupportField.IP_STRATEGY: ("知財戦略", "IP strategy"),
    SupportField.INTERNATIONAL_EXPANSION: ("国際展開", "International expansion"),
    SupportField.REIMBURSEMENT: ("保険償還", "Reimbursement"),
}


def label(value: StrEnum, language: Language) -> str:
    ja, en = LABELS[value]
    return ja if language is Language.JA else en
