"""Demo data through the real APIs: staff tokens per hub, a supporter roster, consultations in Japanese and English."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared import auth

DEMO_HUBS = ("mediso", "cariso", "innohub", "medic", "pmda")

# (id, display name, fields, languages): part-time supporters (非常勤サポーター) by expert field.
ROSTER: dict[str, list[tuple[str, str, list[str], list[str]]]] = {
    "mediso": [
        ("mediso-reg-01", "佐藤 健（薬事・規制）", ["regulation", "reimbursement"], ["ja", "en"]),
        ("mediso-fin-01", "鈴木 美咲（資金調達）", ["fundraising", "business_planning"], ["ja"]),
        ("mediso-ip-01", "高橋 誠（知財戦略）", ["ip_strategy"], ["ja", "en"]),
        ("mediso-intl-01", "Emily Carter (International expansion)", ["international_expansion", "marketing"], ["en"]),
        ("mediso-mgmt-01", "伊藤 直樹（経営戦略）", ["management_strategy", "business_planning"], ["ja"]),
    ],
    "cariso": [
        ("cariso-biz-01", "渡辺 由美（事業計画・介護現場）", ["business_planning", "marketing"], ["ja"]),
        ("cariso-reg-01", "山本 大輔（介護保険制度）", ["regulation", "reimbursement"], ["ja"]),
    ],
    "innohub": [
        ("innohub-vc-01", "中村 翔（VC・資金調達）", ["fundraising", "management_strategy"], ["ja", "en"]),
        ("innohub-mkt-01", "小林 彩（マーケティング）", ["marketing"], ["ja"]),
    ],
    "medic": [
        ("medic-dev-01", "加藤 隆（医療機器開発・薬事）", ["regulation", "business_planning"], ["ja"]),
        ("medic-ip-01", "吉田 恵（知財）", ["ip_strategy"], ["ja"]),
    ],
    "pmda": [
        ("pmda-samd-01", "松本 亮（プログラム医療機器）", ["regulation"], ["ja", "en"]),
        ("pmda-ins-01", "井上 香織（保険適用）", ["reimbursement"], ["ja"]),
    ],
}

CONSULTATIONS: list[tuple[str, dict[str, Any]]] = [
    (
        "mediso",
        {
            "language": "ja",
            "applicant_kind": "startup",
            "organization": "株式会社メディカルシード",
            "title": "AI画像診断支援ソフトウェアの薬事承認に向けた相談",
            "product_kind": "samd",
            "development_stage": "clinical",
            "topics": ["regulation", "fundraising"],
            "consent_to_share": True,
            "contact_name": "山田 花子",
            "email": "hanako.yamada@example.jp",
            "body": "治験計画の立て方と、PMDA相談の進め方、シリーズAの資金調達について助言をいただきたいです。",
        },
    ),
    (
        "mediso",
        {
            "language": "en",
            "applicant_kind": "startup",
            "organization": "Kyoto RegenBio Ltd.",
            "title": "Entering Japan with a regenerative-medicine product",
            "product_kind": "regenerative",
            "development_stage": "non_clinical",
            "topics": ["international_expansion", "regulation"],
            "contact_name": "Daniel Kim",
            "email": "daniel.kim@example.com",
            "body": "We are a Korean-Japanese team preparing non-clinical studies and want to understand the "
            "conditional approval pathway.",
        },
    ),
    (
        "cariso",
        {
            "language": "ja",
            "applicant_kind": "startup",
            "organization": "ケアテック合同会社",
            "title": "見守りセンサーの介護施設への導入と事業計画",
            "product_kind": "care_tech",
            "development_stage": "commercialisation",
            "topics": ["business_planning", "marketing"],
            "contact_name": "佐々木 剛",
            "email": "sasaki@example.jp",
            "body": "介護施設向け見守りセンサーの販路開拓と、介護報酬上の評価について相談したいです。",
        },
    ),
    (
        "medic",
        {
            "language": "ja",
            "applicant_kind": "sme",
            "organization": "有限会社精密加工ふくしま",
            "title": "ものづくり企業の医療機器分野への参入",
            "product_kind": "medical_device",
            "development_stage": "applied_research",
            "topics": ["regulation", "ip_strategy"],
            "contact_name": "阿部 浩",
            "email": "abe@example.jp",
            "body": "金属加工の技術を活かしてカテーテル部品を開発したい。製造販売業の許可と知財について知りたい。",
        },
    ),
    (
        "pmda",
        {
            "language": "en",
            "applicant_kind": "academia",
            "organization": "Osaka University Hospital",
            "title": "Is our sleep-apnea app a medical device?",
            "product_kind": "samd",
            "development_stage": "applied_research",
            "topics": ["regulation", "reimbursement"],
            "contact_name": "Prof. Aiko Mori",
            "email": "aiko.mori@example.ac.jp",
            "body": "We need a determination (該当性) and advice on the development plan and insurance coverage.",
        },
    ),
]


DEMO_PASSWORD = "hubnet-demo-password"
"""The demo staff accounts' password: a local stack's only; deployments open accounts with
`python -m services.intake staff-add` or a hub admin's `POST /v1/hubs/{hub}/staff`."""

# (local part, display name, roles): one person per role at each demo hub.
STAFF: tuple[tuple[str, str, list[str]], ...] = (
    ("admin", "窓口 管理者", ["hub_admin"]),
    ("screener", "常勤 サポーター", ["screener"]),
    ("expert", "非常勤 サポーター", ["expert_supporter"]),
    ("analyst", "集計 担当", ["analyst"]),
)


def staff_email(local: str, hub: str) -> str:
    return f"{local}@{hub}.example.jp"


@dataclass
class SeedReport:
    tokens: dict[str, str] = field(default_factory=dict)
    accounts: list[tuple[str, str, str]] = field(default_factory=list)  # hub, email, roles
    supporters: int = 0
    consultations: list[tuple[str, str]] = field(default_factory=list)


async def seed(env: Mapping[str, str]) -> SeedReport:
    """Idempotent: supporters are PUT, consultations carry an Idempotency-Key, so running it twice adds nothing."""
    key = auth.signing_key(env)
    report = SeedReport(
        tokens={hub: auth.issue_staff_token(key, hub=hub, subject=f"demo-staff-{hub}") for hub in DEMO_HUBS}
    )
    async with httpx.AsyncClient(timeout=10) as client:
        for hub, supporters in ROSTER.items():
            headers = {"Authorization": f"Bearer {report.tokens[hub]}"}
            for supporter_id, name, fields, languages in supporters:
                response = await client.put(
                    f"{env['HUBNET_MATCHING_URL']}/v1/hubs/{hub}/supporters/{supporter_id}",
                    json={"display_name": name, "fields": fields, "languages": languages},
                    headers=headers,
                )
                response.raise_for_status()
                report.supporters += 1
            for local, name, roles in STAFF:
                email = staff_email(local, hub)
                account = {"email": email, "display_name": name, "roles": roles, "password": DEMO_PASSWORD}
                response = await client.post(
                    f"{env['HUBNET_INTAKE_URL']}/v1/hubs/{hub}/staff", json=account, headers=headers
                )
                if response.status_code != 409:  # opened by an earlier run
                    response.raise_for_status()
                report.accounts.append((hub, email, ", ".join(roles)))
        for number, (hub, body) in enumerate(CONSULTATIONS, start=1):
            response = await client.post(
                f"{env['HUBNET_INTAKE_URL']}/v1/hubs/{hub}/consultations",
                json=body,
                headers={"Idempotency-Key": f"demo-{number}"},
            )
            response.raise_for_status()
            report.consultations.append((hub, response.json()["consultation_id"]))
    return report
