"""Business rules of each service, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import domain as intake
from services.matching import domain as matching
from services.notify import domain as notify
from services.notify.templates import Templates
from services.reporting import domain as reporting
from shared.contract.vocabulary import Language, SupportField

REG, FUND, IP = SupportField.REGULATION, SupportField.FUNDRAISING, SupportField.IP_STRATEGY


def supporter(
    id: str, fields: tuple[SupportField, ...], languages: tuple[Language, ...], active: bool = True
) -> matching.Supporter:
    return matching.Supporter(id, "mediso", f"Supporter {id}", fields, languages, active)


def test_best_matches_ranks_by_topic_overlap_when_language_fits() -> None:
    roster = [
        supporter("a", (REG,), (Language.JA,)),
        supporter("b", (REG, FUND), (Language.JA, Language.EN)),
        supporter("c", (IP,), (Language.JA,)),
    ]
    ranked = matching.best_matches(roster, (REG, FUND), Language.JA, limit=3)
    assert [(c.supporter.id, c.score) for c in ranked] == [("b", 1.0), ("a", 0.5)]


def test_best_matches_excludes_supporter_when_language_missing() -> None:
    roster = [supporter("ja-only", (REG,), (Language.JA,)), supporter("bilingual", (REG,), (Language.JA, Language.EN))]
    assert [c.supporter.id for c in matching.best_matches(roster, (REG,), Language.EN, limit=3)] == ["bilingual"]


def test_best_matches_excludes_inactive_supporter() -> None:
    assert (
        matching.best_matches([supporter("x", (REG,), (Language.JA,), active=False)], (REG,), Language.JA, limit=3)
        == []
    )


def test_best_matches_respects_limit() -> None:
    roster = [supporter(str(i), (REG,), (Language.JA,)) for i in range(10)]
    assert len(matching.best_matches(roster, (REG,), Language.JA, limit=3)) == 3


def test_withdraw_refuses_when_already_withdrawn() -> None:
    consultation = intake.Consultation(uuid.uuid4(), "mediso", datetime.now(UTC), intake.Status.SUBMITTED)
    withdrawn = intake.withdraw(consultation, datetime.now(UTC))
    assert withdrawn.status is intake.Status.WITHDRAWN
    with pytest.raises(intake.AlreadyWithdrawn):
        intake.withdraw(withdrawn, datetime.now(UTC))


@pytest.mark.parametrize(
    ("current", "proposed", "expected"),
    [
        (None, reporting.Status.SCREENING, reporting.Status.SCREENING),
        (reporting.Status.SCREENING, reporting.Status.SUBMITTED, reporting.Status.SCREENING),
        (reporting.Status.SUBMITTED, reporting.Status.SCREENING, reporting.Status.SCREENING),
        (reporting.Status.WITHDRAWN, reporting.Status.SCREENING, reporting.Status.WITHDRAWN),
        (reporting.Status.SCREENING, reporting.Status.WITHDRAWN, reporting.Status.WITHDRAWN),
    ],
)
def test_status_only_moves_forward(
    current: reporting.Status | None, proposed: reporting.Status, expected: reporting.Status
) -> None:
    assert reporting.advance(current, proposed) is expected


def test_retry_delay_is_jittered_between_base_and_a_growing_cap() -> None:
    base, cap = timedelta(seconds=2), timedelta(minutes=10)
    for attempts in range(1, 20):
        ceiling = min(cap, base * 2 ** (attempts - 1))
        delays = [notify.retry_delay(attempts, base=base, cap=cap) for _ in range(50)]
        assert all(base <= delay <= ceiling for delay in delays)
    assert max(notify.retry_delay(12, base=base, cap=cap) for _ in range(200)) > timedelta(minutes=5)


def test_delivery_gives_up_at_once_when_refused_and_at_the_deadline_otherwise() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    base, cap = timedelta(seconds=2), timedelta(minutes=10)
    refused = notify.after_failure(1, now=now, deadline=now + timedelta(hours=48), permanent=True, base=base, cap=cap)
    assert refused == notify.GiveUp(permanent=True)
    retry = notify.after_failure(3, now=now, deadline=now + timedelta(hours=48), permanent=False, base=base, cap=cap)
    assert isinstance(retry, notify.Retry)
    assert now + base <= retry.at <= now + base * 4
    late = notify.after_failure(30, now=now, deadline=now + base / 2, permanent=False, base=base, cap=cap)
    assert late == notify.GiveUp(permanent=False)


@pytest.mark.parametrize("language", list(Language))
def test_acknowledgement_renders_in_consultation_language(language: Language) -> None:
    rendered = Templates().render(
        notify.ACKNOWLEDGEMENT,
        language,
        hub_name="MEDISO",
        reference="AB12CD34",
        topics=[SupportField.REGULATION],
        page_url=None,
    )
    assert "AB12CD34" in rendered.subject
    assert ("ご相談を受け付けました" in rendered.subject) is (language is Language.JA)
    assert ("received your consultation" in rendered.subject) is (language is Language.EN)
    assert ("相談分野: 法規制対応" in rendered.body) is (language is Language.JA)
