"""hubnet's records read by the official CloudEvents Python SDK (`cloudevents` 2.x, its Kafka protocol binding).

The SDK is the referee: it decides the content mode of a Kafka record by itself (`from_kafka`: binary when
any `ce_` header is present, structured otherwise) and validates the attributes of a CloudEvents 1.0 event
(required ones, types, time zone, extension names of lower-case letters and digits only).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from shared.contract import Envelope

# What the Kafka binding adds to the value's attributes: the record's key, as the `partitionkey` extension.
PARTITION_KEY = ce_kafka.PARTITIONKEY_ATTR


def message(headers: Iterable[tuple[str, bytes | None]], key: bytes | None, value: bytes) -> ce_kafka.KafkaMessage:
    """A consumed record as the SDK's `KafkaMessage`; a header repeated or without a value fails the test."""
    pairs = list(headers)
    as_dict: dict[str, bytes] = {}
    for name, raw in pairs:
        assert raw is not None, f"header {name} has no value"
        assert name not in as_dict, f"header {name} repeated"
        as_dict[name] = raw
    return ce_kafka.KafkaMessage(headers=as_dict, key=key, value=value)


def read_structured(record: ce_kafka.KafkaMessage) -> BaseCloudEvent:
    """The event the SDK reads from a record, after checking that the SDK takes it for structured mode."""
    assert record.headers.get("content-type") == JSONFormat.CONTENT_TYPE.encode(), record.headers
    assert not [name for name in record.headers if name.lower().startswith(ce_kafka.CE_PREFIX)], "binary-mode headers"
    event = ce_kafka.from_kafka(record, JSONFormat())  # the SDK detects the mode itself
    assert isinstance(event, CloudEvent), "a CloudEvents 1.0 event"
    explicit = ce_kafka.from_structured(record, JSONFormat())
    assert explicit.get_attributes() == event.get_attributes(), "auto-detection chose structured mode"
    assert explicit.get_data() == event.get_data()
    return event


def assert_same_event(event: BaseCloudEvent, envelope: Envelope, *, key: bytes | None) -> None:
    """Every attribute the SDK read equals hubnet's envelope, nothing more, and the data is the payload."""
    published = json.loads(envelope.to_bytes())
    assert event.get_specversion() == "1.0"
    assert event.get_id() == str(envelope.id)
    assert event.get_source() == envelope.source
    assert event.get_type() == envelope.type
    assert event.get_subject() == envelope.subject
    assert event.get_time() == envelope.time
    assert event.get_datacontenttype() == envelope.datacontenttype == "application/json"
    assert event.get_dataschema() == envelope.dataschema
    assert event.get_extension("hub") == envelope.hub
    assert event.get_extension("correlationid") == str(envelope.correlation_id)
    causation = None if envelope.causation_id is None else str(envelope.causation_id)
    assert event.get_extension("causationid") == causation
    assert event.get_data() == envelope.data
    expected = {name for name in published if name != "data"}
    if key is not None:
        expected.add(PARTITION_KEY)
        assert event.get_extension(PARTITION_KEY) == key.decode() == envelope.subject
    assert set(event.get_attributes()) == expected, "no attribute lost or invented"
