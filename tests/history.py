"""A hub's past, in the shape of the seed facts: the events intake would have written, dated in their
fiscal year, to project and count."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta

from services.reporting.domain import JAPAN
from shared.contract.consultation import ApplicantPersonal, ConsultationSubmitted
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    Language,
    ProductKind,
    SupportField,
)

# PMDA's SaMD one-stop window: applications, and consultations by desk (one application reaches up to three).
SAMD_WINDOW: Mapping[int, tuple[int, Mapping[SupportField, int]]] = {
    2021: (
        238,
        {SupportField.DEVICE_APPLICABILITY: 175, SupportField.DEVELOPMENT_ADVICE: 110, SupportField.REIMBURSEMENT: 43},
    ),
    2022: (
        216,
        {SupportField.DEVICE_APPLICABILITY: 166, SupportField.DEVELOPMENT_ADVICE: 79, SupportField.REIMBURSEMENT: 36},
    ),
}


def fiscal_year_of_applications(
    hub: str, fiscal_year: int, applications: int, desks: Mapping[SupportField, int]
) -> list[ConsultationSubmitted]:
    """`applications` consultations spread evenly over the fiscal year (April to March, 10:00 Japan time),
    carrying exactly `desks[d]` consultations of each desk between them, no application a desk twice."""
    topics: list[list[SupportField]] = [[] for _ in range(applications)]
    dealt = [desk for desk, count in desks.items() for _ in range(count)]
    assert len(dealt) >= applications, "every application carries at least one desk"
    assert all(count <= applications for count in desks.values())
    for index, desk in enumerate(dealt):  # a desk's run is shorter than the round: never twice in one application
        topics[index % applications].append(desk)
    start = datetime.combine(date(fiscal_year, 4, 1), time(10), tzinfo=JAPAN)
    return [
        ConsultationSubmitted(
            # The same consultation each time it is built: projecting a year twice changes no count.
            consultation_id=uuid.uuid5(uuid.NAMESPACE_URL, f"hubnet:history:{hub}:{fiscal_year}:{index}"),
            hub=hub,
            submitted_at=start + timedelta(days=index * 365 // applications),
            channel=Channel.PORTAL,
            language=Language.JA,
            applicant_kind=ApplicantKind.STARTUP,
            organization=f"株式会社プログラム医療機器{index:03d}",
            title="プログラム医療機器総合相談",
            product_kind=ProductKind.SAMD,
            development_stage=DevelopmentStage.APPLIED_RESEARCH,
            topics=tuple(topics[index]),
            personal=ApplicantPersonal(
                contact_name="相談 太郎", email=f"samd-{fiscal_year}-{index}@example.jp", body="相談内容"
            ),
        )
        for index in range(applications)
    ]
