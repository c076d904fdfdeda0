"""A generated log: the whole network's consultations over ten fiscal years, each with the life the services
give it, as records exactly as the relays would publish them (envelope JSON, key, type header).

The hubs weigh as the seed facts' yearly volumes do (MEDISO 299, PMDA 328 + the SaMD window's ~230,
MEDIC ~1,900 over four years, InnoHub 459 over four, CARISO and a regional hub as smaller ones); a
consultation's life: submitted (the full record, Japanese or English), acknowledged by email, matched,
screened (most accepted), notes, now and then a supplement, a change of consents, a withdrawal, a failed
delivery, and most accepted ones closed. About six events each: 1,000,000 events are ~166,000
consultations. Deterministic: the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.reporting.domain import JAPAN
from shared.contract.consultation import (
    ConsentsChanged,
    ConsultationClosed,
    ConsultationScreened,
    ConsultationSubmitted,
    ConsultationSupplemented,
    ConsultationWithdrawn,
    DeliveryFailed,
    MatchProposed,
    NoteAdded,
    NotificationSent,
    WithdrawalReason,
)
from shared.contract.vocabulary import (
    ApplicantKind,
    Channel,
    DevelopmentStage,
    MeetingFormat,
    Outcome,
    OutOfScopeReason,
    Prefecture,
    ProductKind,
    SupportField,
    check_digit,
)

HUB_WEIGHTS = {"mediso": 299, "pmda": 560, "medic": 475, "innohub": 115, "cariso": 80, "fukushima": 40}
FIRST_FISCAL_YEAR = 2016
YEARS = 10
EVENTS_PER_CONSULTATION = 6.03  # the mean of the life below, to size the consultations for a number of events
WITHDRAWAL_REASONS: tuple[WithdrawalReason, ...] = ("applicant_request", "duplicate", "other")
NAMESPACE = uuid.UUID("5f0c4a57-8d4e-4b55-9a40-6d1f1c2b7e01")

_JA_BODIES = (
    "薬事承認に向けた相談です。プログラム医療機器として該当性の判断と、臨床評価の進め方について助言をいただきたいです。",
    "治験計画の立案にあたり、PMDAとの事前面談の準備を進めています。必要な非臨床データの範囲を確認したいです。",
    "介護現場向けの見守りセンサーを開発しています。実証フィールドの紹介と、介護報酬上の位置づけを相談したいです。",
    "資金調達の計画について、ベンチャーキャピタルへの説明資料の作り方と事業計画の妥当性を見ていただきたいです。",
    "海外展開を検討しており、米国FDAへの申請と国内承認の順序、知財戦略の整理について相談したいです。",
    "再生医療等製品の製造体制について、品質管理と規制対応の観点から助言をお願いします。保険適用の見通しも知りたいです。",
)
_EN_BODIES = (
    "We develop an AI diagnostic support tool and would like advice on whether it qualifies as SaMD in Japan.",
    "Our startup plans a clinical trial next year; we need guidance on the pre-consultation with PMDA and on funding.",
    "We would like to discuss reimbursement for a home monitoring device and partners among Japanese hospitals.",
)
_NOTES = (
    "初回面談を実施。規制対応の専門家を紹介予定。",
    "事業計画書の修正版を受領。次回面談で確認する。",
    "Follow-up call held; the applicant will send the trial protocol.",
    "知財戦略について弁理士の専門家とマッチング済み。",
)
_FAMILY = (("山田", "ヤマダ"), ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"))
_GIVEN = (("花子", "ハナコ"), ("太郎", "タロウ"), ("美咲", "ミサキ"), ("健", "ケン"), ("陽菜", "ヒナ"))
_SUPPORTERS = tuple(f"sup-{n:03d}" for n in range(40))
_STAFF = tuple(f"staff-{n:02d}" for n in range(20))


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    event_type: str
    time: datetime


def corporate_number(rng: random.Random) -> str:
    base = f"{rng.randrange(10**12):012d}"
    return f"{check_digit(base)}{base}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Network:
    """`Network(events, topic=...).records()`: about `events` records, in the order of their time."""

    def __init__(self, events: int, *, topic: str = "hubnet.{hub}.consultations", seed: int = 7) -> None:
        self.consultations = max(1, round(events / EVENTS_PER_CONSULTATION))
        self._topic = topic
        self._seed = seed

    def records(self) -> list[Record]:
        rng = random.Random(self._seed)
        hubs = list(HUB_WEIGHTS)
        weights = list(HUB_WEIGHTS.values())
        start = datetime.combine(date(FIRST_FISCAL_YEAR, 4, 1), time(9), tzinfo=JAPAN)
        span_s = (
            datetime.combine(date(FIRST_FISCAL_YEAR + YEARS, 4, 1), time(9), tzinfo=JAPAN) - start
        ).total_seconds()
        records: list[Record] = []
        for index in range(self.consultations):
            hub = rng.choices(hubs, weights)[0]
            submitted_at = start + timedelta(seconds=span_s * index / self.consultations + rng.randrange(3600))
            records += self._life(rng, index, hub, submitted_at)
        records.sort(key=lambda record: record.time)
        return records

    def _event(
        self, hub: str, cid: uuid.UUID, n: int, source: str, event_type: str, at: datetime, data: dict[str, Any]
    ) -> Record:
        event_id = uuid.uuid5(NAMESPACE, f"{cid}:{n}")
        envelope = {
            "specversion": "1.0",
            "id": str(event_id),
            "source": source,
            "type": event_type,
            "time": _stamp(at),
            "subject": str(cid),
            "datacontenttype": "application/json",
            "dataschema": f"hubnet:schemas/{event_type}.json",
            "hub": hub,
            "correlationid": str(uuid.uuid5(NAMESPACE, f"{cid}:0")),
            "data": {"consultation_id": str(cid), **data},
        }
        if n:
            envelope["causationid"] = str(uuid.uuid5(NAMESPACE, f"{cid}:0"))
        value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        return Record(self._topic.format(hub=hub), str(cid).encode(), value, event_type, at)

    def _life(self, rng: random.Random, index: int, hub: str, at: datetime) -> list[Record]:
        cid = uuid.uuid5(NAMESPACE, f"consultation:{index}")
        english = rng.random() < 0.2
        family, given = rng.choice(_FAMILY), rng.choice(_GIVEN)
        topics = rng.sample(list(SupportField), rng.choice((1, 1, 2, 3)))
        portal = rng.random() < 0.8
        personal = {
            "contact_name": f"{family[0]} {given[0]}",
            "email": f"applicant{index}@example.jp",
            "phone": f"03-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}",
            "body": rng.choice(_EN_BODIES if english else _JA_BODIES),
            "family_name": family[0],
            "given_name": given[0],
            "family_name_kana": family[1],
            "given_name_kana": given[1],
            "co_researchers": [{"name": "共同 研究者", "affiliation": "大学病院"}] if rng.random() < 0.3 else [],
        }
        events: list[Record] = []

        def add(source: str, event_type: str, moment: datetime, data: dict[str, Any]) -> None:
            events.append(self._event(hub, cid, len(events), source, event_type, moment, data))

        fiscal = at.astimezone(JAPAN)
        add(
            "/hubnet/intake",
            ConsultationSubmitted.event_type,
            at,
            {
                "hub": hub,
                "submitted_at": _stamp(at),
                "channel": (Channel.PORTAL if portal else rng.choice(list(Channel))).value,
                "language": "en" if english else "ja",
                "applicant_kind": rng.choice(list(ApplicantKind)).value,
                "organization": f"株式会社ヘルスケア{index % 5000:04d}",
                "title": "SaMD regulatory pathway" if english else "薬事承認に向けた相談",
                "product_kind": rng.choice(list(ProductKind)).value,
                "development_stage": rng.choice(list(DevelopmentStage)).value,
                "topics": [t.value for t in topics],
                "consent_to_share": rng.random() < 0.6,
                "personal": personal,
                "reference": f"{hub.upper()[:4]}-{fiscal:%Y%m%d}-{index:06d}",
                "corporate_number": corporate_number(rng),
                "prefecture": rng.choice(list(Prefecture)).value,
                "product_name": f"製品{index % 997}",
                "meeting_format": rng.choice(list(MeetingFormat)).value,
                "consents": {"contact_by_email": True, "share_with": ["pmda"] if rng.random() < 0.3 else []},
                "attachments": [],
                "entered_by": None if portal else rng.choice(_STAFF),
            },
        )
        add(
            "/hubnet/notify",
            NotificationSent.event_type,
            at + timedelta(seconds=5),
            {
                "notification_id": str(uuid.uuid5(NAMESPACE, f"{cid}:ack")),
                "sent_at": _stamp(at + timedelta(seconds=5)),
                "channel": "email",
                "template": "consultation.acknowledged",
                "recipient_role": "applicant",
                "language": "en" if english else "ja",
            },
        )
        proposed = at + timedelta(seconds=2)
        add(
            "/hubnet/matching",
            MatchProposed.event_type,
            proposed,
            {
                "proposed_at": _stamp(proposed),
                "rule": "fields-language-load.v1",
                "candidates": [
                    {
                        "supporter_id": supporter,
                        "display_name": f"専門家 {supporter}",
                        "fields": [topics[0].value],
                        "languages": ["ja", "en"],
                        "score": round(rng.random() * 3, 3),
                    }
                    for supporter in rng.sample(_SUPPORTERS, 3)
                ],
            },
        )
        moment = at + timedelta(days=rng.randrange(1, 8), hours=rng.randrange(8))
        if rng.random() < 0.03:
            add(
                "/hubnet/notify",
                DeliveryFailed.event_type,
                at + timedelta(minutes=30),
                {
                    "notification_id": str(uuid.uuid5(NAMESPACE, f"{cid}:fail")),
                    "failed_at": _stamp(at + timedelta(minutes=30)),
                    "channel": "email",
                    "template": "consultation.acknowledged",
                    "recipient_role": "applicant",
                    "attempts": 3,
                    "permanent": True,
                    "reason": "SMTPRecipientsRefused 550",
                },
            )
        if rng.random() < 0.04:
            add(
                "/hubnet/intake",
                ConsultationWithdrawn.event_type,
                moment,
                {"withdrawn_at": _stamp(moment), "reason": rng.choice(WITHDRAWAL_REASONS), "recorded_by": "applicant"},
            )
            return events
        accepted = rng.random() < 0.85
        staff = rng.choice(_STAFF)
        add(
            "/hubnet/intake",
            ConsultationScreened.event_type,
            moment,
            {
                "screened_at": _stamp(moment),
                "decision": "accepted" if accepted else "out_of_scope",
                "reason": None if accepted else rng.choice(list(OutOfScopeReason)).value,
                "recorded_by": staff,
            },
        )
        if not accepted:
            return events
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            moment += timedelta(days=rng.randrange(1, 20))
            add(
                "/hubnet/intake",
                NoteAdded.event_type,
                moment,
                {
                    "note_id": str(uuid.uuid5(NAMESPACE, f"{cid}:note:{len(events)}")),
                    "noted_at": _stamp(moment),
                    "recorded_by": staff,
                    "personal": {"text": rng.choice(_NOTES)},
                },
            )
        if rng.random() < 0.1:
            moment += timedelta(days=rng.randrange(1, 10))
            add(
                "/hubnet/intake",
                ConsultationSupplemented.event_type,
                moment,
                {
                    "supplemented_at": _stamp(moment),
                    "attachments": [],
                    "personal": {"note": "追加資料をお送りします。"},
                },
            )
        if rng.random() < 0.05:
            moment += timedelta(days=1)
            add(
                "/hubnet/intake",
                ConsentsChanged.event_type,
                moment,
                {
                    "changed_at": _stamp(moment),
                    "consents": {"contact_by_email": True, "share_with": []},
                    "changed_by": "applicant",
                },
            )
        if rng.random() < 0.8:
            moment += timedelta(days=rng.randrange(5, 90))
            add(
                "/hubnet/intake",
                ConsultationClosed.event_type,
                moment,
                {"closed_at": _stamp(moment), "outcome": rng.choice(list(Outcome)).value, "recorded_by": staff},
            )
        return events
