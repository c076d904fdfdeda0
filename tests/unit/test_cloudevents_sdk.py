"""The golden samples, as hubnet publishes them, read by the official CloudEvents SDK: structured mode by the book.

Each sample is put in a Kafka record exactly as `shared.kafka.OutboxProducer` would send it (value, key =
subject, `shared.kafka.record_headers`); the SDK's Kafka binding must take it for a structured-mode record
and give back every attribute and the data unchanged. The other way round, an event the SDK writes in
structured mode must parse as hubnet's envelope, so a producer using the SDK can feed hubnet's consumers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared import kafka
from shared.contract import Envelope
from shared.contract.schemas import SAMPLES_DIR
from tests import cloudevents_sdk

SAMPLES = sorted(SAMPLES_DIR.glob("*.json"))


def _as_published(path: Path) -> tuple[Envelope, ce_kafka.KafkaMessage]:
    value = path.read_bytes()
    envelope = Envelope.model_validate_json(value)
    return envelope, cloudevents_sdk.message(kafka.record_headers(envelope.type), envelope.subject.encode(), value)


def test_there_are_samples_with_and_without_a_cause() -> None:
    causes = [Envelope.model_validate_json(path.read_bytes()).causation_id for path in SAMPLES]
    assert len(SAMPLES) >= 5
    assert None in causes, "a sample without causationid"
    assert [cause for cause in causes if cause is not None], "a sample with causationid"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_golden_sample_is_a_structured_cloudevent_for_the_sdk_with_every_attribute_intact(path: Path) -> None:
    envelope, record = _as_published(path)
    event = cloudevents_sdk.read_structured(record)
    cloudevents_sdk.assert_same_event(event, envelope, key=envelope.subject.encode())
    assert event.get_data() == json.loads(path.read_bytes())["data"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_event_the_sdk_writes_in_structured_mode_parses_as_the_same_hubnet_envelope(path: Path) -> None:
    envelope, record = _as_published(path)
    attributes = {
        name: value
        for name, value in cloudevents_sdk.read_structured(record).get_attributes().items()
        if name != "partitionkey"
    }
    data = json.loads(path.read_bytes())["data"]
    written = ce_kafka.to_structured(CloudEvent(attributes, data), JSONFormat())
    assert written.headers == {"content-type": kafka.CONTENT_TYPE.encode()}
    assert Envelope.model_validate_json(written.value) == envelope


def test_sdk_refuses_an_extension_name_cloudevents_forbids() -> None:
    """The referee is strict: had the wire said `correlation_id` (Python's name), the SDK would refuse the event."""
    _, record = _as_published(SAMPLES[0])
    document = json.loads(record.value)
    document["correlation_id"] = document.pop("correlationid")
    renamed = ce_kafka.KafkaMessage(headers=record.headers, key=record.key, value=json.dumps(document).encode())
    with pytest.raises(CloudEventValidationError) as refused:
        ce_kafka.from_kafka(renamed, JSONFormat())
    assert set(refused.value.errors) == {"correlation_id"}


def test_one_ce_header_would_make_the_sdk_read_the_record_in_binary_mode() -> None:
    """Why hubnet sends no `ce_` header: the SDK would take the value for the data and find no attributes."""
    _, record = _as_published(SAMPLES[0])
    with_ce_header = ce_kafka.KafkaMessage(
        headers={**record.headers, "ce_id": b"x"}, key=record.key, value=record.value
    )
    with pytest.raises(CloudEventValidationError) as refused:
        ce_kafka.from_kafka(with_ce_header, JSONFormat())
    assert {"source", "type"} <= set(refused.value.errors)
