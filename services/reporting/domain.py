"""How events move a consultation through its lifecycle, as reporting shows it."""

from __future__ import annotations

import functools
import math
import re
import statistics
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import holidays

JAPAN = ZoneInfo("Asia/Tokyo")


class Status(StrEnum):
    SUBMITTED = "submitted"
    SCREENING = "screening"
    MATCHED = "matched"
    MEETING_SCHEDULED = "meeting_scheduled"
    IN_SUPPORT = "in_support"
    CLOSED = "closed"
    REFERRED = "referred"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


TERMINAL = frozenset({Status.CLOSED, Status.REFERRED, Status.WITHDRAWN, Status.REJECTED})
ORDER = (Status.SUBMITTED, Status.SCREENING, Status.MATCHED, Status.MEETING_SCHEDULED, Status.IN_SUPPORT)


def advance(current: Status | None, proposed: Status) -> Status:
    """Statuses only move forward; a terminal status is never left."""
    if current is None:
        return proposed
    if current in TERMINAL:
        return current
    if proposed in TERMINAL:
        return proposed
    return proposed if ORDER.index(proposed) > ORDER.index(current) else current


def fiscal_year(moment: datetime) -> int:
    """年度: the Japanese fiscal year, April to March, of a moment in Japan time (2022-03-31 is FY2021)."""
    local = moment.astimezone(JAPAN)
    return local.year if local.month >= 4 else local.year - 1


def fiscal_quarter(moment: datetime) -> int:
    """Q1 is April to June, Q4 January to March."""
    return (moment.astimezone(JAPAN).month - 4) % 12 // 3 + 1


# Japanese is written without spaces: its runs are indexed as overlapping character pairs (bigrams), as
# pg_bigm does, so that 「薬事」 finds 「薬事承認に向けた相談」; everything else is indexed by words.
_JAPANESE = "\u3005\u3041-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKENS = re.compile(f"([{_JAPANESE}]+)|([^\\W{_JAPANESE}_]+)")


def _normalised(text: str) -> str:
    """NFKC (full-width letters and digits, half-width kana) and case folded."""
    return unicodedata.normalize("NFKC", text).casefold()


LONGEST_WORD = 100
"""Longer runs of letters are no words anyone searches for (PostgreSQL refuses lexemes past 2,046 bytes)."""


def _runs(text: str) -> list[list[str]]:
    """The text's phrases, each a list of lexemes in order: a Japanese run's bigrams (or its one
    character), or one word (none longer than `LONGEST_WORD`). (`SearchDocument.of` walks them alike.)"""
    runs: list[list[str]] = []
    for japanese, word in _TOKENS.findall(_normalised(text)):
        if japanese:
            runs.append([japanese[i : i + 2] for i in range(len(japanese) - 1)] or [japanese])
        elif len(word) <= LONGEST_WORD:
            runs.append([word])
    return runs


MAX_POSITION = 16383
"""PostgreSQL's largest position in a `tsvector`; a lexeme keeps at most 256 of them."""
_ONE_AT = [b"\x00\x00\x01" + spot.to_bytes(2, "big") for spot in range(MAX_POSITION + 1)]
"""A lexeme's end in the binary form, when it has one position: NUL, one position, the position."""


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """A `tsvector` of texts: each lexeme at its positions, so that a query's bigrams must stand side by side
    as they do in the query; then each Japanese character alone, so that a query of one character finds it
    too. Lexemes hold only letters and digits: nothing to quote. Written as text by the live upserts
    (`literal`) and in PostgreSQL's binary form by the rebuild's COPY (`binary`)."""

    positions: dict[str, list[int]]

    @classmethod
    def of(cls, texts: Iterable[str | None]) -> SearchDocument:
        # The texts' lexemes in one stream, a gap (None) after each text so that fields never run into each
        # other; then each lexeme's positions gathered in one pass (the loop runs once per lexeme: a few
        # hundred times a consultation).
        stream: list[str | None] = []
        singles: set[str] = set()
        for text in texts:
            for japanese, word in _TOKENS.findall(_normalised(text)) if text else ():
                if japanese:
                    stream += [japanese[i : i + 2] for i in range(len(japanese) - 1)] or [japanese]
                    singles.update(japanese)
                elif len(word) <= LONGEST_WORD:
                    stream.append(word)
            stream.append(None)
        positions: dict[str, list[int]] = {}
        get = positions.get
        if len(stream) < MAX_POSITION:  # positions rise strictly: none repeats
            for position, lexeme in enumerate(stream, 1):
                if lexeme is not None:
                    spots = get(lexeme)
                    if spots is None:
                        positions[lexeme] = [position]
                    elif len(spots) < 256:
                        spots.append(position)
            end = len(stream)
        else:  # past the last position, every lexeme stands at it, once
            for position, lexeme in enumerate(stream, 1):
                if lexeme is not None:
                    position = min(position, MAX_POSITION)
                    spots = get(lexeme)
                    if spots is None:
                        positions[lexeme] = [position]
                    elif len(spots) < 256 and spots[-1] != position:
                        spots.append(position)
            end = MAX_POSITION
        spot = min(end + 1, MAX_POSITION)
        for char in singles - positions.keys():
            positions[char] = [spot]
        return cls(positions)

    def literal(self) -> str:
        return " ".join(f"'{lexeme}':{','.join(map(str, spots))}" for lexeme, spots in self.positions.items())

    def binary(self) -> bytes:
        """`tsvectorsend`'s form: the lexeme count, then each lexeme (UTF-8, NUL-ended), its position count
        and positions (weight D), big-endian. The lexemes in PostgreSQL's order (their UTF-8 bytes', which is
        their code points'), which spares the receiver its sort."""
        positions = self.positions
        parts = [len(positions).to_bytes(4, "big")]
        for lexeme in sorted(positions):
            spots = positions[lexeme]
            parts.append(lexeme.encode())
            parts.append(_ONE_AT[spots[0]] if len(spots) == 1 else struct.pack(f"!xH{len(spots)}H", len(spots), *spots))
        return b"".join(parts)


def search_document(texts: Iterable[str | None]) -> str:
    """The `tsvector` literal of the texts (`SearchDocument`)."""
    return SearchDocument.of(texts).literal()


def search_query(text: str) -> str | None:
    """The `to_tsquery` text for what a person typed: every phrase must be found, a Japanese phrase's
    bigrams side by side (`<->`); None when nothing searchable was typed."""
    phrases = [" <-> ".join(f"'{lexeme}'" for lexeme in run) for run in _runs(text)]
    return " & ".join(f"({phrase})" for phrase in phrases) or None


@functools.cache
def _japanese_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("JP", years=year)


def is_business_day(day: date) -> bool:
    """A weekday that is not a Japanese public holiday."""
    return day.weekday() < 5 and day not in _japanese_holidays(day.year)


def business_days(start: datetime, end: datetime) -> int:
    """Japanese business days from `start` to `end` (Japan time), the first day not counted: received on a
    Friday and screened on the Monday after is 1; the same day is 0."""
    first, last = start.astimezone(JAPAN).date(), end.astimezone(JAPAN).date()
    days = 0
    day = first
    while day < last:
        day += timedelta(days=1)
        days += is_business_day(day)
    return days


SCREENING_BUSINESS_DAYS = 3
"""A consultation is overdue when it waits for its screening more than this many business days."""


def overdue_before(now: datetime, days: int = SCREENING_BUSINESS_DAYS) -> datetime:
    """The instant (Japan midnight) before which a consultation received has waited more than `days` business
    days by `now`: with 3, on a Monday, whatever came in by Tuesday of the week before."""
    today = now.astimezone(JAPAN)
    day = today.date()
    while business_days(datetime.combine(day - timedelta(days=1), time(12), tzinfo=JAPAN), today) <= days:
        day -= timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=JAPAN)


@dataclass(frozen=True, slots=True)
class Spread:
    """The median and 90th percentile (nearest rank) of some durations; None without any."""

    median: float | None
    p90: float | None
    count: int


def spread(values: Iterable[float]) -> Spread:
    ordered = sorted(values)
    if not ordered:
        return Spread(None, None, 0)
    return Spread(statistics.median(ordered), ordered[math.ceil(0.9 * len(ordered)) - 1], len(ordered))
