"""Rebuild reporting's read models from the log without downtime.

`python -m services.reporting rebuild` (or `hubnet reporting rebuild` on the local stack):

1. A shadow schema gets reporting's tables, empty and bare (no keys, no indexes).
2. Every hub topic is replayed from its beginning into the shadow while the live views keep serving and the
   live consumer keeps applying, a partition at a time: each event folded by the live consumer's own
   projection (`handlers.PROJECTIONS`), the timeline written with COPY as the replay goes, each view once
   when its partition is read to the end (`replay.Bulk`). For a large log, worker processes (one per core)
   replay beside this one, each taking the largest partition left when it is free. A progress bar shows
   events/s and the time left. Should the database refuse a row (as it refuses a NUL in text, which the
   live consumer passes over alone), the replay starts again the careful way: the live consumer's SQL, in
   batches, one event at a time where a batch fails.
3. The inbox is filled from the timeline (the events applied), and the keys and indexes are built side by
   side on connections of their own.
4. The swap: the live tables are locked (readers wait, briefly), the shadow catches up to the end of
   every topic as it stands under the lock (with the live consumer's SQL), members' saved views and the
   migration stamp are copied, and the two schemas trade names in the same transaction. Every event the
   live consumer had applied lies below those ends, so the shadow holds it, in its inbox too: when the
   live consumer goes on, what it had not yet applied is applied once, and what it had is a duplicate.
   Statements the services prepared resolve the names again at their next use (PostgreSQL revalidates
   cached plans), so nothing restarts.
5. The old schema is dropped, or kept with `--keep-old`.

`rebuild --check` builds the shadow and compares it with the live views (row counts and a checksum of
every row of the consultations and the timeline), then drops it: equal when the live consumer has caught
up with the same log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from sqlalchemy import Index, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting import handlers, tables
from services.reporting.replay import (
    BULK_TABLES,
    CONSUMER,
    LIVE,
    Partition,
    Replay,
    Taken,
    WorkerDone,
    queue,
    refused,
    replay_in_worker,
    replay_partitions,
    spawn_context,
    start_worker,
)
from shared import db
from shared.errors import describe
from shared.settings import CommonSettings

log = logging.getLogger(__name__)

CHECKED_TABLES = ("consultations", "timeline")
"""What the log alone decides; saved views are members' preferences, the inbox records when, not what."""
LOCK_ORDER = ("saved_views", "inbox", "consultations", "timeline")
"""The swap locks the live tables in the order the services take them (the console's list reads saved views,
then consultations; the consumer claims its inbox, then writes views, then the timeline; a record is read
view, then timeline), so a reader or the consumer waits for the swap rather than deadlocking with it."""
EVENTS_PER_WORKER = 100_000
"""A worker process is started for this many events at least (its start costs about a second), one per core
at most."""


@dataclass(frozen=True)
class Checksum:
    rows: int
    digest: str


@dataclass(frozen=True)
class Outcome:
    shadow: str
    events: int
    seconds: float
    """From the start to the swap (or to the shadow's last index, checking): the checksums after are not counted."""
    live: dict[str, Checksum]
    rebuilt: dict[str, Checksum]
    swapped: bool
    careful: bool = False
    """The bulk load was refused and the log replayed the careful way."""
    workers: int = 1
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds each step took, in order."""

    @property
    def equal(self) -> bool:
        return self.live == self.rebuilt

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Phases:
    """The rebuild's steps, shown on the progress bar and timed."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def __call__(self, name: str) -> None:
        self.done()
        self._current = (name, time.perf_counter())
        self._progress.update(self._task, description=name)

    def done(self) -> None:
        if self._current is not None:
            name, began = self._current
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began
            self._current = None


def shadow_name() -> str:
    return f"{LIVE}_rebuild_{datetime.now(UTC):%Y%m%d%H%M%S%f}"


def cores() -> int:
    """The cores this process may use: its CPU affinity, within its cgroup's quota (a container's CPU limit)."""
    count = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            count = min(count, max(1, int(quota) // int(period)))
    return count


def workers_for(events: int, partitions: int, asked: int | None = None) -> int:
    """The processes to replay with: as many as `asked` (at most one per partition); else one for a small log,
    one per `EVENTS_PER_WORKER` events for a larger one, at most one per core and per partition."""
    if asked is not None:
        return max(1, min(asked, partitions))
    return max(1, min(events // EVENTS_PER_WORKER, partitions, cores()))


def _deferred_indexes() -> list[Index]:
    """Indexes the replay does not need (only the keys its upserts conflict on): built once at the end,
    as a bulk load does, rather than updated row by row (the search index above all)."""
    return [index for table in tables.metadata.sorted_tables for index in table.indexes if not index.unique]


def _bulk_tables() -> list[Table]:
    return [table for table in tables.metadata.sorted_tables if table.name in BULK_TABLES]


async def create_shadow(engine: AsyncEngine, schema: str, *, bare: bool) -> None:
    """Reporting's tables in `schema`, empty, without the indexes built at the end; `bare`: without the
    bulk-loaded tables' primary keys too (COPY appends, the keys are sorted once at the end)."""
    deferred = {str(index.name) for index in _deferred_indexes()}
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        translated = await connection.execution_options(schema_translate_map={LIVE: schema})
        await translated.run_sync(tables.metadata.create_all)
        for name in sorted(deferred):
            await connection.execute(text(f'DROP INDEX "{schema}"."{name}"'))
        if bare:
            for table in _bulk_tables():
                key = table.primary_key.name
                await connection.execute(text(f'ALTER TABLE "{schema}"."{table.name}" DROP CONSTRAINT "{key}"'))


async def create_deferred_indexes(engine: AsyncEngine, schema: str, *, keys: bool, inbox: bool = False) -> None:
    """The indexes left for the end (`keys`: the bulk-loaded tables' primary keys too; `inbox`: the inbox
    filled from the timeline first, the events it holds), side by side on connections of their own, each
    sorted in one pass with room to do it in memory. A key is built as a unique index, then made the key,
    so that reading its table meanwhile (the inbox's fill) is not locked out. (The tables' statistics are
    left to autovacuum, which analyses a table of new rows in its next round.)"""

    async def build(steps: list[Any]) -> None:
        for step in steps:  # each step committed: its locks let go before the next
            async with engine.begin() as connection:
                await connection.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
                if isinstance(step, Index):
                    translated = await connection.execution_options(schema_translate_map={LIVE: schema})
                    await translated.run_sync(step.create)
                else:
                    await connection.execute(step)

    chains: list[list[Any]] = []
    for table in tables.metadata.sorted_tables:
        if keys and table.name in BULK_TABLES:  # (not `AddConstraint`: it drops the key from later CREATE TABLEs)
            name, key = table.primary_key.name, ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
            qualified = f'"{schema}"."{table.name}"'
            chain = [
                text(f'CREATE UNIQUE INDEX "{name}" ON {qualified} ({key})'),
                text(f'ALTER TABLE {qualified} ADD CONSTRAINT "{name}" PRIMARY KEY USING INDEX "{name}"'),
            ]
            if inbox and table is tables.inbox_table:
                chain.insert(
                    0,
                    text(
                        f"INSERT INTO {qualified} (consumer, event_id, event_type) "
                        f'SELECT :consumer, event_id, event_type FROM "{schema}".timeline'
                    ).bindparams(consumer=CONSUMER),
                )
            chains.append(chain)
    chains += [[index] for index in _deferred_indexes()]
    await asyncio.gather(*(build(chain) for chain in chains))


async def replay_in_workers(
    settings: CommonSettings,
    schema: str,
    partitions: list[Partition],
    workers: int,
    advanced: Callable[[int], None],
) -> list[WorkerDone]:
    """The partitions folded and copied here and by `workers - 1` worker processes (started meanwhile: a
    fresh interpreter takes a second to import), each taking the next partition of the queue when it is free;
    their progress counted as they go."""
    context = spawn_context()
    progress, taken = context.Value("q", 0), context.Value("i", 0)
    mine = asyncio.ensure_future(replay_partitions(settings, schema, partitions, Taken(taken), advanced))
    if workers == 1:
        return [await mine]
    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(workers - 1, mp_context=context, initializer=start_worker, initargs=(progress, taken))
    working = asyncio.gather(
        *(loop.run_in_executor(pool, replay_in_worker, settings, schema, partitions) for _ in range(workers - 1))
    )
    try:
        reported = 0
        pending: set[asyncio.Future[Any]] = {working, mine}
        while pending:  # the first failure, here or in a worker, ends the wait
            finished, pending = await asyncio.wait(pending, timeout=0.25, return_when=asyncio.FIRST_EXCEPTION)
            now = progress.value
            advanced(now - reported)
            reported = now
            for future in finished:
                future.result()
        return [mine.result(), *working.result()]
    finally:
        for future in (mine, working):
            if not future.done():
                future.cancel()
                with contextlib.suppress(BaseException):
                    await future
        # Not waited for: a worker still running fails on the shadow, which the caller drops.
        pool.shutdown(wait=False, cancel_futures=True)


async def replay_into(
    settings: CommonSettings,
    replay: Replay,
    schema: str,
    starts: Mapping[TopicPartition, int],
    advanced: Callable[[int], None],
    most_workers: int | None = None,
) -> int:
    """The log up to its ends as they stand now, folded and copied into the bare `schema` a partition at a
    time, by worker processes besides this one for a large log; returns how many processes worked. Raises
    what the database refused."""
    ends = await replay.ends()
    events = sum(ends[tp] - starts[tp] for tp in starts)
    workers = workers_for(events, len(starts), most_workers)
    done = await replay_in_workers(settings, schema, queue(starts, ends), workers, advanced)
    replay.seek(ends)
    replay.applied += sum(worker.applied for worker in done)
    replay.skipped += sum(worker.skipped for worker in done)
    replay.failed += sum(worker.failed for worker in done)
    refused = [worker.refused for worker in done if worker.refused is not None]
    if refused:
        raise BulkRefused(refused[0])
    return workers


class BulkRefused(Exception):
    """The database refused a row of the bulk load."""


async def checksums(engine: AsyncEngine, schema: str) -> dict[str, Checksum]:
    """Row count and an order-independent digest of every row's text, per table the log alone decides. The
    columns in the models' order: a migrated table has its added columns last, a rebuilt one in place."""
    found = {}
    async with engine.connect() as connection:
        for table in CHECKED_TABLES:
            columns = ", ".join(f't."{c.name}"' for c in tables.metadata.tables[f"{LIVE}.{table}"].columns)
            rows, digest = (
                await connection.execute(
                    text(
                        f"SELECT count(*), coalesce(sum(('x' || substr(md5(row({columns})::text), 1, 15))"
                        f'::bit(60)::bigint), 0) FROM "{schema}"."{table}" t'
                    )
                )
            ).one()
            found[table] = Checksum(int(rows), str(digest))
    return found


async def swap(engine: AsyncEngine, replay: Replay, schema: str, advanced: Callable[[int], None]) -> str:
    """Under an exclusive lock on the live tables: catch the shadow up with the log, copy what the log does
    not decide, and trade the schemas' names. Returns the old schema's new name."""
    old = f"{schema}_old"
    assert set(LOCK_ORDER) == {table.name for table in tables.metadata.sorted_tables}, "every table, once"
    live_tables = ", ".join(f'"{LIVE}"."{name}"' for name in LOCK_ORDER)
    async with engine.begin() as connection:
        await connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        await connection.execute(text(f"LOCK TABLE {live_tables} IN ACCESS EXCLUSIVE MODE"))
        await replay.until(await replay.ends(), advanced)
        kept = ", ".join(f'"{c.name}"' for c in tables.SavedView.__table__.columns)
        await connection.execute(
            text(f'INSERT INTO "{schema}".saved_views ({kept}) SELECT {kept} FROM "{LIVE}".saved_views')
        )
        await connection.execute(text(f'CREATE TABLE "{schema}".alembic_version AS TABLE "{LIVE}".alembic_version'))
        await connection.execute(text(f'ALTER SCHEMA "{LIVE}" RENAME TO "{old}"'))
        await connection.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{LIVE}"'))
    return old


async def drop_schema(engine: AsyncEngine, schema: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


async def rebuild(
    settings: CommonSettings,
    *,
    check_only: bool = False,
    keep_old: bool = False,
    workers: int | None = None,
    console: Console | None = None,
) -> Outcome:
    """`workers`: replay with this many processes (by default, by the log's size and the cores)."""
    most_workers = workers
    console = console or Console(stderr=True)
    engine = db.create_engine(settings, application_name="hubnet-reporting-rebuild")
    shadow = shadow_name()
    replay = Replay(settings, engine, shadow, handlers.ROUTES)
    started = time.perf_counter()
    swapped = careful = False
    workers = 1
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} events/s"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("starting", total=None, rate=0.0)
            phase = Phases(progress, task)
            phase(f"creating {shadow}")
            await create_shadow(engine, shadow, bare=True)
            sizes = await replay.start()
            starts = {tp: replay.position(tp) for tp in sizes}
            progress.update(task, total=sum(sizes.values()))

            def advanced(count: int) -> None:
                progress.advance(task, count)
                elapsed = time.perf_counter() - started
                done = progress.tasks[task].completed
                progress.update(task, rate=done / elapsed if elapsed else 0.0)

            phase("replaying")
            try:
                workers = await replay_into(settings, replay, shadow, starts, advanced, most_workers)
                phase("building the keys and indexes")
                await create_deferred_indexes(engine, shadow, keys=True, inbox=True)
            except Exception as error:
                # A row the database refuses (the live consumer passed its event over alone), a key met twice
                # (a consultation's events in more than one partition), or a worker process lost (killed for
                # its memory, say): the careful way, in this process. Anything else stops the rebuild.
                if not (isinstance(error, BulkRefused | BrokenProcessPool) or refused(error)):
                    raise
                log.warning("the bulk load failed (%s); replaying the careful way", describe(error))
                careful, workers = True, 1
                await drop_schema(engine, shadow)
                await create_shadow(engine, shadow, bare=False)
                await replay.rewind()
                progress.reset(task, total=sum(sizes.values()), rate=0.0)
                phase("replaying, carefully")
                await replay.until(await replay.ends(), advanced)
                phase("building the indexes")
                await create_deferred_indexes(engine, shadow, keys=False)
            if check_only:
                phase.done()
                seconds = time.perf_counter() - started
                live, rebuilt = await asyncio.gather(checksums(engine, LIVE), checksums(engine, shadow))
            else:
                phase("catching up under the lock, then swapping")
                old = await swap(engine, replay, shadow, advanced)
                swapped = True
                phase.done()
                seconds = time.perf_counter() - started
                rebuilt = await checksums(engine, LIVE)
                live = await checksums(engine, old)
                if not keep_old:
                    await drop_schema(engine, old)
            progress.update(task, description="done")
        return Outcome(shadow, replay.applied, seconds, live, rebuilt, swapped, careful, workers, phase.seconds)
    finally:
        await replay.stop()
        if not swapped:
            with contextlib.suppress(Exception):
                await drop_schema(engine, shadow)
        await engine.dispose()


def report(outcome: Outcome, console: Console) -> None:
    console.print(
        f"{'rebuilt and swapped' if outcome.swapped else 'rebuilt into a shadow (check only)'}: "
        f"{outcome.events:,} events in {outcome.seconds:.1f} s ({outcome.rate:,.0f} events/s"
        f"{f', {outcome.workers} workers' if outcome.workers > 1 else ''}{', carefully' if outcome.careful else ''})"
    )
    console.print("  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in outcome.phases.items()))
    for table in CHECKED_TABLES:
        live, rebuilt = outcome.live[table], outcome.rebuilt[table]
        mark = "equal" if live == rebuilt else "DIFFERENT"
        console.print(f"  {table}: live {live.rows:,} rows {live.digest}")
        console.print(f"  {' ' * len(table)}  rebuilt {rebuilt.rows:,} rows {rebuilt.digest}: {mark}")
