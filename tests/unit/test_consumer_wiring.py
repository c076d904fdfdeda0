"""The consumer's pure parts: how a batch is cut into handler calls, and what the type checker refuses."""

from __future__ import annotations

import itertools
import random
import textwrap
import uuid
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from mypy import api as mypy_api
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.matching import SERVICE as MATCHING
from services.matching import tables as matching_tables
from shared.consumer import _DECLARED, _DECLARED_MAX, Consumer, Parsed, _declared_type, lanes, on, plan
from shared.contract import Event, EventData
from shared.contract.consultation import ConsultationSubmitted, ConsultationWithdrawn, MatchProposed
from shared.observability import ServiceMetrics
from shared.settings import CommonSettings
from tests.integration import events

ROOT = Path(__file__).resolve().parents[2]


def _event(subject: uuid.UUID, kind: str) -> Event[Any]:
    envelope = events.submitted("mediso", subject)
    data: EventData
    if kind == "submitted":
        return Event(envelope, events.submitted_data(envelope))
    if kind == "proposed":
        data = MatchProposed(consultation_id=subject, proposed_at=envelope.time, rule="r", candidates=())
    else:
        data = ConsultationWithdrawn(
            consultation_id=subject, withdrawn_at=envelope.time, reason="other", recorded_by="staff"
        )
    return Event(envelope.model_copy(update={"type": data.event_type}), data)


def _flatten(layers: list[list[list[Event[Any]]]]) -> list[Event[Any]]:
    return [event for layer in layers for call in layer for event in call]


def test_plan_keeps_each_consultations_order_and_groups_by_type_when_batches_are_shuffled() -> None:
    rng = random.Random(5)
    for _ in range(200):
        subjects = [uuid.uuid4() for _ in range(rng.randint(1, 6))]
        batch = [_event(rng.choice(subjects), rng.choice(["submitted", "proposed", "withdrawn"])) for _ in range(30)]
        layers = plan(batch)
        applied = _flatten(layers)
        assert sorted(id(e) for e in applied) == sorted(id(e) for e in batch), "every event exactly once"
        by_subject: dict[str, list[int]] = defaultdict(list)
        for event in applied:
            by_subject[event.envelope.subject].append(id(event))
        for subject, order in by_subject.items():
            assert order == [id(e) for e in batch if e.envelope.subject == subject]
        for layer in layers:
            assert all(len({e.envelope.type for e in call}) == 1 for call in layer), "one type per call"
            assert len({call[0].envelope.type for call in layer}) == len(layer), "one call per type per layer"


def _record(
    partition: int, offset: int, headers: list[tuple[str, bytes | None]] | None = None
) -> ConsumerRecord[bytes | None, bytes | None]:
    return ConsumerRecord(
        topic="hubnet.consultations.mediso",
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=headers or [],
    )


def _parsed(partition: int, offset: int) -> Parsed:
    return Parsed(_record(partition, offset), _event(uuid.uuid4(), "submitted"))


def test_lanes_keep_each_partition_whole_and_in_order_and_balance_the_load() -> None:
    rng = random.Random(7)
    for _ in range(200):
        count = rng.randint(1, 4)
        offsets = dict.fromkeys(range(rng.randint(1, 8)), 0)
        batch = []
        for _ in range(rng.randint(1, 60)):
            partition = rng.choice(list(offsets))
            batch.append(_parsed(partition, offsets[partition]))
            offsets[partition] += 1
        result = lanes(batch, count)
        assert sorted(id(item) for lane in result for item in lane) == sorted(id(item) for item in batch)
        assert len(result) == min(count, len({item.record.partition for item in batch}))
        homes = {item.record.partition: index for index, lane in enumerate(result) for item in lane}
        for index, lane in enumerate(result):
            assert lane, "no empty lane"
            assert all(homes[item.record.partition] == index for item in lane), "a partition in one lane only"
            for partition in {item.record.partition for item in lane}:
                in_lane = [item.record.offset for item in lane if item.record.partition == partition]
                assert in_lane == sorted(in_lane), "a partition's records keep their order"
        sizes = sorted(len(lane) for lane in result)
        largest_partition = max(sum(1 for item in batch if item.record.partition == p) for p in offsets)
        assert sizes[-1] - sizes[0] <= largest_partition, "lanes differ by at most one partition's records"


def test_plan_applies_a_backlog_of_lifecycles_in_one_call_per_type() -> None:
    subjects = [uuid.uuid4() for _ in range(100)]
    interleaved = list(
        itertools.chain.from_iterable(
            (_event(s, "submitted"), _event(s, "proposed"), _event(s, "withdrawn")) for s in subjects
        )
    )
    layers = plan(interleaved)
    assert [len(layer) for layer in layers] == [1, 1, 1]
    assert [len(layer[0]) for layer in layers] == [100, 100, 100]


def test_mypy_refuses_a_handler_registered_under_another_event_type(tmp_path: Path) -> None:
    module = tmp_path / "wrong_route.py"
    module.write_text(
        textwrap.dedent(
            """
            from collections.abc import Sequence

            from sqlalchemy.ext.asyncio import AsyncSession

            from shared.consumer import on
            from shared.contract import Event
            from shared.contract.consultation import ConsultationSubmitted, MatchProposed


            async def on_match_proposed(session: AsyncSession, events: Sequence[Event[MatchProposed]]) -> None:
                pass


            right = on(MatchProposed, on_match_proposed)
            wrong = on(ConsultationSubmitted, on_match_proposed)
            """
        ),
        encoding="utf-8",
    )
    stdout, _, status = mypy_api.run(["--strict", "--config-file", str(ROOT / "pyproject.toml"), str(module)])
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert status == 1
    assert len(errors) == 1, stdout
    assert "wrong_route.py:16" in errors[0], stdout


def test_only_a_well_formed_type_header_lets_a_record_be_skipped_unparsed() -> None:
    def record(*headers: tuple[str, bytes | None]) -> ConsumerRecord[bytes | None, bytes | None]:
        return _record(0, 0, headers=list(headers))

    assert _declared_type(record(("hubnet-type", b"hubnet.consultation.submitted.v1"))) == (
        "hubnet.consultation.submitted.v1"
    )
    assert _declared_type(record(("content-type", b"x"), ("hubnet-type", b"hubnet.match.proposed.v1"))) == (
        "hubnet.match.proposed.v1"
    )
    for headers in [(), (("hubnet-type", None),), (("hubnet-type", b"\xff\xfe"),), (("hubnet-type", b"drop table"),)]:
        assert _declared_type(record(*headers)) is None, headers
    assert _declared_type(record(("ce_type", b"hubnet.consultation.submitted.v1"))) is None


def test_a_header_value_seen_before_declares_the_same_and_garbage_never_fills_memory() -> None:
    """Header values are remembered (a log holds a handful of types), up to a bound; past the bound each
    value is matched anew, and the answers do not change."""

    def record(value: bytes) -> ConsumerRecord[bytes | None, bytes | None]:
        return _record(0, 0, headers=[("hubnet-type", value)])

    for _ in range(2):
        assert _declared_type(record(b"hubnet.consultation.closed.v1")) == "hubnet.consultation.closed.v1"
        assert _declared_type(record(b"hubnet.consultation.closed.v1 ")) is None
    for index in range(_DECLARED_MAX + 10):
        assert _declared_type(record(f"junk {index}".encode())) is None
    assert len(_DECLARED) <= _DECLARED_MAX
    assert _declared_type(record(b"hubnet.match.proposed.v2")) == "hubnet.match.proposed.v2"
    assert _declared_type(record(b"junk 0")) is None


async def test_a_record_is_parsed_in_one_pass_only_when_its_type_header_tells_the_truth() -> None:
    """The one-pass parse trusts the header only as far as the envelope's own type agrees; otherwise the
    two-step parse decides, and gives a dead letter its precise reason."""

    async def handle(session: AsyncSession, events: Sequence[Event[ConsultationSubmitted]]) -> None:
        raise AssertionError("not applied here")

    consumer = Consumer(
        service=MATCHING,
        routes=[on(ConsultationSubmitted, handle)],
        settings=CommonSettings(),
        sessions=async_sessionmaker(),
        inbox_table=matching_tables.inbox_table,
        broker=KafkaBroker(),
        metrics=(consumer_metrics := ServiceMetrics("unit", CollectorRegistry())),
    )
    dead: list[str] = []

    async def dead_letter(record: Any, reason: str, event_type: str) -> None:
        dead.append(reason)

    consumer._dead_letter = dead_letter  # type: ignore[method-assign]  # the broker is not started here
    submitted = events.submitted("mediso")
    withdrawn = submitted.model_copy(update={"type": ConsultationWithdrawn.event_type})
    invalid = submitted.model_copy(update={"data": {**submitted.data, "organization": ""}})
    header: list[tuple[str, bytes | None]] = [("hubnet-type", ConsultationSubmitted.event_type.encode())]

    def record(envelope: Any, headers: list[tuple[str, bytes | None]]) -> ConsumerRecord[bytes | None, bytes | None]:
        return ConsumerRecord(**{**vars(_record(0, 0, headers)), "value": envelope.to_bytes()})

    one_pass, two_steps = await consumer._parse_all([record(submitted, header), record(submitted, [])])
    for parsed in (one_pass, two_steps):
        assert parsed.event.envelope.id == submitted.id
        assert parsed.event.data == events.submitted_data(submitted)
    assert await consumer._parse_all([record(withdrawn, header)]) == [], "a lying header is not believed"
    ignored = consumer_metrics.registry.get_sample_value(
        "hubnet_unit_events_total", {"type": ConsultationWithdrawn.event_type, "outcome": "ignored"}
    )
    assert ignored == 1
    assert await consumer._parse_all([record(invalid, header)]) == []
    assert len(dead) == 1
    assert dead[0].startswith(f"invalid {ConsultationSubmitted.event_type} payload: ")
    assert "organization" in dead[0]
