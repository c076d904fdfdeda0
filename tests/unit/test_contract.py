"""The contract as a reviewed artifact: schemas are current, published samples still parse and validate."""

from __future__ import annotations

import json
import pickle
import time
import uuid
from pathlib import Path

import jsonschema
import pytest

from services.matching.handlers import Need
from shared.contract import EVENT_TYPES, Envelope, EventData, data_model_for, new_envelope
from shared.contract.consultation import ConsultationSubmitted, ConsultationWithdrawn, MatchProposed
from shared.contract.envelope import encode_event, new_event_id
from shared.contract.schemas import SAMPLES_DIR, SCHEMAS_DIR, generate, stale
from shared.contract.topics import all_topics, consultations, dead_letter, hub_of

SAMPLES = sorted(SAMPLES_DIR.glob("*.json"))


def _load(path: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _parsed(path: Path) -> tuple[Envelope, EventData]:
    """A golden sample's envelope, and its payload in its current model."""
    envelope = Envelope.model_validate(_load(path))
    model = data_model_for(envelope.type)
    assert model is not None
    return envelope, model.model_validate(envelope.data)


def test_committed_schemas_match_the_models() -> None:
    assert stale() == [], "contract schemas are stale: run `make contracts` and review the diff"


def test_every_event_type_has_a_golden_sample() -> None:
    # `<type>.json`, and variants as `<type>+<what it shows>.json` (the full record, say).
    assert {path.stem.split("+")[0] for path in SAMPLES} == set(EVENT_TYPES)
    assert all(_load(path)["type"] == path.stem.split("+")[0] for path in SAMPLES)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_golden_sample_parses_with_current_models(path: Path) -> None:
    envelope, payload = _parsed(path)
    assert json.loads(envelope.to_bytes()) == _load(path), "round trip must not change a published message"
    assert str(getattr(payload, "consultation_id")) == envelope.subject  # noqa: B009


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_golden_sample_validates_against_committed_schema(path: Path) -> None:
    sample = _load(path)
    envelope_schema = _load(SCHEMAS_DIR / "envelope.json")
    jsonschema.validate(sample, envelope_schema)
    jsonschema.validate(sample["data"], _load(SCHEMAS_DIR / f"{sample['type']}.json"))


def test_payload_ignores_unknown_fields_when_a_producer_adds_optional_ones() -> None:
    sample = _load(SAMPLES_DIR / "hubnet.match.proposed.v1.json")
    data = dict(sample["data"])  # type: ignore[call-overload]
    data["added_in_a_later_minor_change"] = {"anything": True}
    assert MatchProposed.model_validate(data).rule == "topic-language-overlap/v1"


def test_envelope_rejects_type_without_version() -> None:
    sample = _load(SAMPLES_DIR / "hubnet.match.proposed.v1.json")
    with pytest.raises(ValueError, match="type"):
        Envelope.model_validate({**sample, "type": "hubnet.match.proposed"})


def test_caused_event_inherits_correlation_id() -> None:
    cause = Envelope.model_validate(_load(SAMPLES_DIR / "hubnet.consultation.submitted.v1.json"))
    effect = new_envelope(
        ConsultationWithdrawn(
            consultation_id=uuid.UUID(cause.subject), withdrawn_at=cause.time, reason="duplicate", recorded_by="x"
        ),
        source="/hubnet/intake",
        hub=cause.hub,
        subject=cause.subject,
        causation=cause,
    )
    assert effect.correlation_id == cause.correlation_id
    assert effect.causation_id == cause.id
    assert json.loads(effect.to_bytes())["correlationid"] == str(cause.correlation_id)


def test_personal_data_sits_only_under_personal() -> None:
    schema = json.loads(generate()["hubnet.consultation.submitted.v1.json"])
    top_level = set(schema["properties"])
    assert {"email", "contact_name", "phone", "body"}.isdisjoint(top_level)
    assert "personal" in schema["required"]


def test_topics_are_per_hub_and_dead_letters_per_consumer() -> None:
    specs = {spec.name: spec for spec in all_topics(["mediso", "cariso"])}
    assert specs[consultations("mediso")].partitions > 1
    assert specs["hubnet.directory"].compacted
    assert dead_letter("hubnet.matching") in specs
    assert hub_of("hubnet.mediso.consultations") == "mediso"
    assert hub_of("hubnet.dlt.matching") is None


def test_event_ids_are_uuid7_unique_and_in_time_order() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_event_id() for _ in range(100_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert {(i.version, i.variant) for i in ids} == {(7, uuid.RFC_4122)}
    millis = [i.int >> 80 for i in ids]
    assert before <= millis[0]
    assert millis[-1] <= after
    assert millis == sorted(millis)  # the indexes they key grow at their right edge
    # Each is the UUID its value makes: equal, hashed alike, printed and pickled alike.
    for made in ids[:1000]:
        same = uuid.UUID(int=made.int)
        assert made == same
        assert hash(made) == hash(same)
        assert str(made) == str(same)
        assert made.is_safe == same.is_safe
        assert pickle.loads(pickle.dumps(made)) == same


SUBMITTED_SAMPLES = sorted(SAMPLES_DIR.glob("hubnet.consultation.submitted.v1*.json"))


@pytest.mark.parametrize("path", SUBMITTED_SAMPLES, ids=lambda p: p.name)
def test_matchings_view_of_a_submission_reads_what_the_full_model_reads(path: Path) -> None:
    full = Envelope.model_validate(_load(path))
    submitted, need = ConsultationSubmitted.model_validate(full.data), Need.model_validate(full.data)
    assert need.event_type == submitted.event_type
    for name, field in Need.model_fields.items():
        assert field.annotation == ConsultationSubmitted.model_fields[name].annotation, name
        assert getattr(need, name) == getattr(submitted, name), name
    assert need.subject == submitted.subject


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_an_event_encoded_for_the_outbox_is_the_envelopes_own_bytes(path: Path) -> None:
    envelope, data = _parsed(path)
    rebuilt = Envelope.model_validate(envelope.model_dump() | {"data": data.model_dump(mode="json")})
    encoded = encode_event(
        data,
        event_id=envelope.id,
        source=envelope.source,
        hub=envelope.hub,
        subject=envelope.subject,
        time=envelope.time,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
    )
    assert encoded == rebuilt.to_bytes()
