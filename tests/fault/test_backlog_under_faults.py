"""A backlog of 3,000 consultations worked through faults, then every store checked once healed.

The consumer services are stopped while 3,000 consultations are accepted over HTTP (and relayed to
Kafka by intake's outbox) and a few records no hubnet producer writes are added: one with a header
whose value is null, one with a header value that is not UTF-8 (both good events: consumers never
read headers), one whose header *name* is not UTF-8 (aiokafka cannot decode it), and an outbox row to
a topic that does not exist. Then the consumers start, and while they work the backlog:

- PostgreSQL is stopped for 15 s once every consumer has applied part of its backlog;
- each of matching, notify and reporting is SIGKILLed three times, each time once it has made progress
  since it was (re)started, and started again as a supervisor would.

Once healed, the test proves: every accepted consultation is in intake's, matching's, notify's and
reporting's stores exactly once (the two good injected events in the consumers' too); every event
reached every consumer's inbox; no good event was dead-lettered, and the undecodable record was, by
its position; the unroutable outbox row held back nothing; every applicant got an acknowledgement,
with at most one duplicate per notify crash.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import tables as intake_tables
from shared.contract import Envelope
from shared.contract.topics import consultations, dead_letter
from shared.hubs import DEFAULT_HUBS
from shared.kafka import CONTENT_TYPE, TYPE_HEADER
from tests.fault.conftest import Stack
from tests.fault.control import StackControl
from tests.integration import events
from tests.support import (
    NewMail,
    produce_with_headers,
    produce_with_undecodable_header_name,
    read_to_end,
    wait_for,
)

CONSULTATIONS = 3000
IN_FLIGHT = 24  # concurrent submissions
CONSUMERS = ("matching", "notify", "reporting")
KILLS = 3
POSTGRES_OUTAGE_S = 15.0
SUBMITTED, PROPOSED, SENT = (
    "hubnet.consultation.submitted.v1",
    "hubnet.match.proposed.v1",
    "hubnet.notification.sent.v1",
)
HUBS = [hub.id for hub in DEFAULT_HUBS]
UNROUTABLE_TOPIC = "hubnet.nowhere.consultations"
UNREADABLE_REASON = b"unreadable record: UnicodeDecodeError"
_POSITION = ("topic", "partition", "offset")  # the dead-letter headers hubnet-dlt-<name> of an unreadable record

CONSUMER_SETTINGS = {
    # Fetches of 10 records: each consumer's share of the backlog is then 300 transactions or more, so
    # every kill lands with work applied behind it and work ahead. (With 50, matching, which applies a
    # batch in a few milliseconds, once finished its whole share between a restart and the next kill.)
    "HUBNET_CONSUMER_BATCH_SIZE": "10",
    # A delivery orphaned by a SIGKILL is sent again when its lease lapses: 5 s rather than 60 keeps the
    # test short. Safe: a message is begun only within half its lease (and cut off at the other half), and
    # the next only once the last is recorded.
    "HUBNET_DELIVERY_LEASE_S": "5",
}


@dataclass(frozen=True)
class Injected:
    """Records written straight to Kafka, around intake."""

    good: list[Envelope]  # a null header value, a header value that is not UTF-8: to be applied
    undecodable: tuple[str, int, int]  # (topic, partition, offset) of the record whose header name is not UTF-8


@pytest.mark.timeout(720)
async def test_backlog_is_applied_exactly_once_through_a_postgres_outage_and_sigkills(
    stack: Stack, http: httpx.AsyncClient, control: StackControl, database: AsyncEngine, new_mail: NewMail
) -> None:
    started = time.monotonic()
    for service in CONSUMERS:
        await control.stop(service)

    unroutable = await _stage_unroutable_outbox_row(database)
    accepted = await _submit(http, stack.intake, CONSULTATIONS)
    injected = await _inject(stack.bootstrap)
    await wait_for(
        lambda: _all_relayed(database, accepted), timeout=120, interval=0.5, what="intake to relay every submission"
    )
    assert not await _published(database, unroutable), "no broker acknowledges a topic that does not exist"
    backlog = Backlog(database, control, accepted + [uuid.UUID(envelope.subject) for envelope in injected.good])
    print(f"backlog of {len(backlog.ids)} consultations in Kafka after {time.monotonic() - started:.0f}s")

    at_outage = await _stop_postgres_mid_backlog(control, backlog, http, stack)
    print(f"PostgreSQL stopped for {POSTGRES_OUTAGE_S:.0f}s with {at_outage} of {backlog.totals} applied")

    kills = await asyncio.gather(*(_kill_repeatedly(control, backlog, service) for service in CONSUMERS))
    for service, (progress, _) in zip(CONSUMERS, kills, strict=True):
        print(f"{service} SIGKILLed at {progress} of {backlog.totals[service]}")
    orphaned = set().union(*(in_flight for _, in_flight in kills))
    print(f"{len(orphaned)} deliveries were claimed and unrecorded when notify was killed")

    await wait_for(backlog.done, timeout=300, interval=1, what="every store to hold the whole backlog")
    print(f"healed after {time.monotonic() - started:.0f}s")

    await _assert_stored_exactly_once(database, accepted, backlog.ids)
    await _assert_every_event_reached_every_inbox(database, backlog.ids, injected)
    await _assert_dead_letters(stack.bootstrap, backlog.ids, injected)
    await _assert_unroutable_row_held_back_nothing(database, unroutable, accepted)
    await _assert_orphaned_deliveries_sent_again(database, orphaned)
    _assert_acknowledged_within_the_duplicate_bound(new_mail, backlog.ids, orphaned=orphaned, notify_crashes=KILLS)


# --- the backlog ------------------------------------------------------------------------------------


def _request(index: int) -> dict[str, Any]:
    language = "ja" if index % 2 else "en"
    return {
        "language": language,
        "applicant_kind": "startup",
        "organization": f"障害試験株式会社 {index}",
        "title": "障害下の受付" if language == "ja" else "Intake under faults",
        "product_kind": "samd",
        "development_stage": "clinical",
        "topics": ["regulation", "reimbursement"],
        "contact_name": "障害 試験",
        "email": f"fault-{index}@example.jp",
        "body": "障害試験の相談です。",
    }


async def _submit(http: httpx.AsyncClient, intake: str, count: int) -> list[uuid.UUID]:
    """`count` consultations accepted by intake over HTTP, spread over the hubs, IN_FLIGHT at a time."""
    in_flight = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> uuid.UUID:
        async with in_flight:
            response = await http.post(
                f"{intake}/v1/hubs/{HUBS[index % len(HUBS)]}/consultations", json=_request(index), timeout=60
            )
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["consultation_id"])

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def _inject(bootstrap: str) -> Injected:
    null_header, latin1_header, undecodable = (events.submitted(hub) for hub in HUBS[:3])
    good = []
    for envelope, odd in ((null_header, None), (latin1_header, "Grüße".encode("latin-1"))):
        headers = [("content-type", CONTENT_TYPE.encode()), (TYPE_HEADER, envelope.type.encode()), ("x-odd", odd)]
        topic = consultations(envelope.hub)
        await produce_with_headers(
            bootstrap, topic, envelope.to_bytes(), key=envelope.subject.encode(), headers=headers
        )
        good.append(envelope)
    topic = consultations(undecodable.hub)
    written = await produce_with_undecodable_header_name(
        bootstrap, topic, undecodable.to_bytes(), key=undecodable.subject.encode(), partition=0
    )
    return Injected(good, (topic, written.partition, written.offset))


async def _stage_unroutable_outbox_row(database: AsyncEngine) -> uuid.UUID:
    """A row in intake's outbox whose topic does not exist (as after a hub was configured in intake
    before its topic was created); staged before the backlog, so it is due throughout."""
    envelope = events.submitted("nowhere")
    async with database.begin() as connection:
        await connection.execute(
            intake_tables.outbox_table.insert().values(
                event_id=envelope.id,
                topic=UNROUTABLE_TOPIC,
                key=envelope.subject,
                event_type=envelope.type,
                payload=envelope.to_bytes(),
            )
        )
    return envelope.id


async def _all_relayed(database: AsyncEngine, accepted: Sequence[uuid.UUID]) -> bool:
    async with database.connect() as connection:
        unpublished = await connection.scalar(
            text("SELECT count(*) FROM intake.outbox WHERE key = ANY(:keys) AND published_at IS NULL"),
            {"keys": [str(consultation_id) for consultation_id in accepted]},
        )
    return bool(unpublished == 0)


async def _published(database: AsyncEngine, event_id: uuid.UUID) -> bool:
    async with database.connect() as connection:
        published = await connection.scalar(
            text("SELECT published_at IS NOT NULL FROM intake.outbox WHERE event_id = :id"), {"id": event_id}
        )
    return bool(published)


PROGRESS = {
    "matching": "SELECT count(*) FROM matching.proposals WHERE consultation_id = ANY(:ids)",
    "notify": "SELECT count(*) FROM notify.deliveries WHERE consultation_id = ANY(:ids) AND status = 'sent'",
    "reporting": "SELECT count(*) FROM reporting.timeline WHERE consultation_id = ANY(:ids)",
}


class Backlog:
    """The consultations the consumers work through, and each consumer's progress read from its own
    store: proposals (matching), deliveries sent (notify), timeline entries (reporting: submitted,
    proposed and sent, three per consultation). Every wait on it fails at once when a consumer's
    liveness does."""

    def __init__(self, database: AsyncEngine, control: StackControl, ids: Sequence[uuid.UUID]) -> None:
        self.database = database
        self.control = control
        self.ids = list(ids)
        self.totals = {"matching": len(ids), "notify": len(ids), "reporting": 3 * len(ids)}

    async def progress(self, service: str) -> int:
        async with self.database.connect() as connection:
            return int(await connection.scalar(text(PROGRESS[service]), {"ids": self.ids}) or 0)

    async def everyones_progress(self) -> dict[str, int]:
        return {service: await self.progress(service) for service in CONSUMERS}

    async def advanced(self, service: str, beyond: int, *, timeout: float) -> int:
        """Wait until `service` has applied more than `beyond`; its progress then."""

        async def moved() -> int | None:
            await self.control.assert_live(service)
            now = await self.progress(service)
            return now if now > beyond else None

        return await wait_for(moved, timeout=timeout, interval=0.02, what=f"{service} to get past {beyond}")

    async def deliveries_in_flight(self) -> set[uuid.UUID]:
        """Consultations whose delivery notify has claimed (`sending`) and not recorded yet."""
        async with self.database.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT consultation_id FROM notify.deliveries"
                    " WHERE consultation_id = ANY(:ids) AND status = 'sending'"
                ),
                {"ids": self.ids},
            )
        return {row.consultation_id for row in rows}

    async def done(self) -> bool:
        """Every consultation proposed, acknowledged, and shown by reporting with both."""
        for service in CONSUMERS:
            await self.control.assert_live(service)
        async with self.database.connect() as connection:
            shown = await connection.scalar(
                text(
                    "SELECT count(*) FROM reporting.consultations WHERE id = ANY(:ids)"
                    " AND match_proposed_at IS NOT NULL AND acknowledged_at IS NOT NULL"
                ),
                {"ids": self.ids},
            )
        total = len(self.ids)
        return shown == total and await self.progress("matching") == await self.progress("notify") == total


# --- the faults -------------------------------------------------------------------------------------


async def _stop_postgres_mid_backlog(
    control: StackControl, backlog: Backlog, http: httpx.AsyncClient, stack: Stack
) -> Mapping[str, int]:
    """Start the consumers, matching last (it is the fastest by far), and stop PostgreSQL as soon as
    each has applied part of its backlog; restart it after POSTGRES_OUTAGE_S. Returns the progress
    read just before the stop."""
    for service in ("notify", "reporting"):
        control.spawn(service, CONSUMER_SETTINGS)
        await backlog.advanced(service, 0, timeout=120)
    control.spawn("matching", CONSUMER_SETTINGS)
    await backlog.advanced("matching", 0, timeout=120)
    at_outage = await backlog.everyones_progress()
    await control.stop("postgres")
    try:
        for service, applied in at_outage.items():
            assert 0 < applied < backlog.totals[service], f"{service} mid-backlog when PostgreSQL stops"
        readiness = (await http.get(f"{stack.intake}/readyz")).json()
        assert readiness["database"].startswith("unavailable"), readiness
        await asyncio.sleep(POSTGRES_OUTAGE_S)  # the outage itself: nothing to wait for
    finally:
        await control.start("postgres")
    return at_outage


async def _kill_repeatedly(control: StackControl, backlog: Backlog, service: str) -> tuple[list[int], set[uuid.UUID]]:
    """KILLS times: once `service` has applied something since it last (re)started, SIGKILL it, check
    that its backlog was not finished, and start it again. Returns its progress at each kill, and (for
    notify) the consultations whose delivery it was sending when killed."""
    killed_at, orphaned = [], set()
    since = await backlog.progress(service)
    for _ in range(KILLS):
        await backlog.advanced(service, since, timeout=120)
        await control.kill(service)
        progress = await backlog.progress(service)
        assert progress < backlog.totals[service], f"{service} was killed after its backlog was done"
        killed_at.append(progress)
        if service == "notify":
            orphaned |= await backlog.deliveries_in_flight()
        control.spawn(service, CONSUMER_SETTINGS)
        await control.ready(service, timeout=120)
        since = await backlog.progress(service)  # after any commit the killed process had in flight
    return killed_at, orphaned


# --- what must hold once healed ---------------------------------------------------------------------


async def _rows(database: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with database.connect() as connection:
        return list(await connection.execute(text(sql), params))


async def _assert_stored_exactly_once(
    database: AsyncEngine, accepted: Sequence[uuid.UUID], ids: Sequence[uuid.UUID]
) -> None:
    """Intake holds each accepted consultation; matching one proposal and one MatchProposed each, notify
    one delivery each (sent), reporting one view each and one submitted and one proposed entry each."""
    [[stored]] = await _rows(database, "SELECT count(*) FROM intake.consultations WHERE id = ANY(:ids)", ids=accepted)
    assert stored == len(accepted)

    keys = [str(consultation_id) for consultation_id in ids]
    [[proposals, proposed_events, once]] = await _rows(
        database,
        """
        SELECT (SELECT count(*) FROM matching.proposals WHERE consultation_id = ANY(:ids)),
               count(*), count(*) FILTER (WHERE staged = 1)
        FROM (SELECT key, count(*) AS staged FROM matching.outbox
              WHERE key = ANY(:keys) AND event_type = :proposed GROUP BY key) per_consultation
        """,
        ids=ids,
        keys=keys,
        proposed=PROPOSED,
    )
    assert (proposals, proposed_events, once) == (len(ids),) * 3, "one proposal, one MatchProposed per consultation"

    [[deliveries, consultations_delivered, sent]] = await _rows(
        database,
        """
        SELECT count(*), count(DISTINCT consultation_id), count(*) FILTER (WHERE status = 'sent')
        FROM notify.deliveries WHERE consultation_id = ANY(:ids)
        """,
        ids=ids,
    )
    assert (deliveries, consultations_delivered, sent) == (len(ids),) * 3, "one delivery per consultation, sent"

    [[views, submitted_once, proposed_once, sent_at_least_once]] = await _rows(
        database,
        """
        SELECT (SELECT count(*) FROM reporting.consultations WHERE id = ANY(:ids)),
               count(*) FILTER (WHERE submitted = 1), count(*) FILTER (WHERE proposed = 1),
               count(*) FILTER (WHERE sent >= 1)
        FROM (SELECT consultation_id,
                     count(*) FILTER (WHERE event_type = :submitted) AS submitted,
                     count(*) FILTER (WHERE event_type = :proposed) AS proposed,
                     count(*) FILTER (WHERE event_type = :sent) AS sent
              FROM reporting.timeline WHERE consultation_id = ANY(:ids) GROUP BY consultation_id) per_consultation
        """,
        ids=ids,
        submitted=SUBMITTED,
        proposed=PROPOSED,
        sent=SENT,
    )
    assert (views, submitted_once, proposed_once, sent_at_least_once) == (len(ids),) * 4, "reporting, once each"


async def _assert_every_event_reached_every_inbox(
    database: AsyncEngine, ids: Sequence[uuid.UUID], injected: Injected
) -> None:
    """Every ConsultationSubmitted is in matching's, notify's and reporting's inbox; every MatchProposed
    and NotificationSent (a resent acknowledgement has one of its own) in reporting's."""
    produced = """
        SELECT event_id, event_type FROM intake.outbox WHERE key = ANY(:keys)
        UNION ALL SELECT unnest(CAST(:injected AS uuid[])), :submitted
        UNION ALL SELECT event_id, event_type FROM matching.outbox WHERE key = ANY(:keys)
        UNION ALL SELECT event_id, event_type FROM notify.outbox WHERE key = ANY(:keys)
    """
    consumed = {"matching": [SUBMITTED], "notify": [SUBMITTED], "reporting": [SUBMITTED, PROPOSED, SENT]}
    missing = {}
    for schema, types in consumed.items():
        [[count]] = await _rows(
            database,
            f"""
            SELECT count(*) FROM ({produced}) produced
            WHERE event_type = ANY(:types)
              AND NOT EXISTS (SELECT 1 FROM {schema}.inbox i WHERE i.event_id = produced.event_id)
            """,
            keys=[str(consultation_id) for consultation_id in ids],
            injected=[envelope.id for envelope in injected.good],
            submitted=SUBMITTED,
            types=types,
        )
        missing[schema] = count
    assert missing == dict.fromkeys(consumed, 0), f"events missing from inboxes: {missing}"


async def _assert_dead_letters(bootstrap: str, ids: Sequence[uuid.UUID], injected: Injected) -> None:
    """No event about these consultations was dead-lettered by any consumer; each consumer dead-lettered
    the undecodable record, by its position."""
    keys = {str(consultation_id).encode() for consultation_id in ids}
    topic, partition, offset = injected.undecodable
    position = (topic.encode(), str(partition).encode(), str(offset).encode())
    for group in (f"hubnet.{service}" for service in CONSUMERS):
        records = await read_to_end(bootstrap, dead_letter(group))
        headers = [dict(record.headers) for record in records]
        good = [h.get("hubnet-dlt-reason") for record, h in zip(records, headers, strict=True) if record.key in keys]
        assert not good, f"{group} dead-lettered good events: {good}"
        at_position = [h for h in headers if tuple(h.get(f"hubnet-dlt-{n}") for n in _POSITION) == position]
        reasons = {h["hubnet-dlt-reason"] for h in at_position}
        assert reasons == {UNREADABLE_REASON}, f"{group}: the undecodable record's dead letters say {reasons}"


async def _assert_unroutable_row_held_back_nothing(
    database: AsyncEngine, unroutable: uuid.UUID, accepted: Sequence[uuid.UUID]
) -> None:
    """The row to a missing topic was tried and is still unpublished (in backoff, or parked), while every
    row staged after it was published."""
    [[published, attempts, error]] = await _rows(
        database, "SELECT published_at, attempts, last_error FROM intake.outbox WHERE event_id = :id", id=unroutable
    )
    assert published is None
    assert attempts >= 1, "the relay tried it"
    assert error, "and recorded why it failed"
    assert await _all_relayed(database, accepted)


async def _assert_orphaned_deliveries_sent_again(database: AsyncEngine, orphaned: set[uuid.UUID]) -> None:
    """A delivery notify was sending when killed was claimed again once its lease lapsed, and sent."""
    [[resent]] = await _rows(
        database,
        "SELECT count(*) FROM notify.deliveries"
        " WHERE consultation_id = ANY(:ids) AND status = 'sent' AND attempts >= 2",
        ids=list(orphaned),
    )
    assert resent == len(orphaned)


def _assert_acknowledged_within_the_duplicate_bound(
    new_mail: NewMail, ids: Sequence[uuid.UUID], *, orphaned: set[uuid.UUID], notify_crashes: int
) -> None:
    """Every applicant got their acknowledgement. Only a delivery claimed and not yet recorded when notify
    died may go out again, once its lease lapses; of those, only the one on its way to the SMTP server can
    have gone out already (one message at a time, each recorded before the next), so at most one
    duplicate per crash."""
    mailed = new_mail.per_consultation()
    counts = {consultation_id: mailed[str(consultation_id)] for consultation_id in ids}
    never = [consultation_id for consultation_id, count in counts.items() if count == 0]
    assert not never, f"{len(never)} consultations were never acknowledged"
    twice = {consultation_id for consultation_id, count in counts.items() if count > 1}
    print(f"{sum(counts.values())} acknowledgements for {len(ids)} consultations: {len(twice)} sent twice")
    assert twice <= orphaned, "only a delivery claimed and unrecorded when notify died is sent again"
    assert len(twice) <= notify_crashes, "one duplicate per crash at most"
    assert max(counts.values()) <= 2, "no applicant acknowledged more than twice"
