"""Builders of real events for the tests: envelopes exactly as the producing service would write them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.contract import Envelope, new_envelope
from shared.contract.consultation import ApplicantPersonal, ConsultationSubmitted
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    Language,
    ProductKind,
    SupportField,
)


def submitted(hub: str, consultation_id: uuid.UUID | None = None, *, language: Language = Language.JA) -> Envelope:
    consultation_id = consultation_id or uuid.uuid4()
    data = ConsultationSubmitted(
        consultation_id=consultation_id,
        hub=hub,
        submitted_at=datetime.now(UTC),
        channel=Channel.PORTAL,
        language=language,
        applicant_kind=ApplicantKind.STARTUP,
        organization="株式会社テストメディカル",
        title="治験計画について",
        product_kind=ProductKind.SAMD,
        development_stage=DevelopmentStage.CLINICAL,
        topics=(SupportField.REGULATION,),
        # One applicant per consultation, as in life (notify limits acknowledgements per address).
        personal=ApplicantPersonal(
            contact_name="山田 花子", email=f"hanako-{consultation_id.hex[:12]}@example.jp", body="相談内容"
        ),
    )
    return new_envelope(data, source="/hubnet/intake", hub=hub, subject=str(consultation_id))


def submitted_data(envelope: Envelope) -> ConsultationSubmitted:
    return ConsultationSubmitted.model_validate(envelope.data)
