"""Reporting's rules without a database: fiscal years, Japanese business days, spreads, the search index,
CSV cells."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.reporting import domain
from services.reporting.console import spreadsheet_safe

JAPAN = domain.JAPAN


def test_fiscal_year_and_quarter_follow_april_in_japan_time() -> None:
    assert domain.fiscal_year(datetime(2022, 3, 31, 23, 59, tzinfo=JAPAN)) == 2021
    assert domain.fiscal_year(datetime(2022, 4, 1, 0, 0, tzinfo=JAPAN)) == 2022
    # 2022-03-31 16:00 UTC is already April 1st in Japan.
    assert domain.fiscal_year(datetime.fromisoformat("2022-03-31T16:00:00+00:00")) == 2022
    assert [domain.fiscal_quarter(datetime(2022, month, 1, tzinfo=JAPAN)) for month in (4, 7, 10, 1)] == [1, 2, 3, 4]


def test_business_days_skip_weekends_and_japanese_holidays() -> None:
    friday = datetime(2025, 4, 25, 15, tzinfo=JAPAN)
    assert domain.business_days(friday, datetime(2025, 4, 25, 17, tzinfo=JAPAN)) == 0
    assert domain.business_days(friday, datetime(2025, 4, 28, 9, tzinfo=JAPAN)) == 1
    # Golden Week: 4/29 (昭和の日), 5/3–5/6 (憲法記念日, みどりの日, こどもの日, 振替休日).
    assert domain.business_days(friday, datetime(2025, 5, 7, 9, tzinfo=JAPAN)) == 5  # 4/28, 4/30, 5/1, 5/2, 5/7
    assert not domain.is_business_day(date(2025, 5, 6))


def test_spread_is_the_median_and_the_nearest_rank_90th_percentile() -> None:
    assert domain.spread([]) == domain.Spread(None, None, 0)
    assert domain.spread([3, 1, 2]) == domain.Spread(2, 3, 3)
    assert domain.spread(range(1, 11)) == domain.Spread(5.5, 9, 10)


def test_search_document_indexes_japanese_bigrams_in_order_and_words() -> None:
    document = domain.search_document(["薬事承認", "SaMD の相談"])
    assert document.startswith("'薬事':1 '事承':2 '承認':3 'samd':5")
    assert "'薬':" in document, "one character alone too"
    assert domain.search_query("薬事承認") == "('薬事' <-> '事承' <-> '承認')"
    assert domain.search_query("ＳａＭＤ　承認") == "('samd') & ('承認')"
    assert domain.search_query("'; DROP TABLE --") == "('drop') & ('table')", "only letters and digits reach the query"
    assert domain.search_query("？！") is None


def test_a_word_no_one_searches_for_is_left_out_of_the_index() -> None:
    """A body of 20,000 letters without a space: PostgreSQL refuses a lexeme past 2,046 bytes."""
    assert domain.search_document(["a" * 20_000, "approval"]) == "'approval':2"


def _walked(texts: Iterable[str | None]) -> dict[str, list[int]]:
    """The search document's rule walked plainly, one lexeme at a time: each at the next position (one more
    between texts), every position past the last one at the last, at most 256 positions a lexeme, then each
    Japanese character not already a lexeme after the end."""
    positions: dict[str, list[int]] = {}
    position, singles = 0, set()
    for text in texts:
        for japanese, word in domain._TOKENS.findall(domain._normalised(text)) if text else ():
            if japanese:
                lexemes = [japanese[i : i + 2] for i in range(len(japanese) - 1)] or [japanese]
                singles.update(japanese)
            elif len(word) <= domain.LONGEST_WORD:
                lexemes = [word]
            else:
                continue
            for lexeme in lexemes:
                position = min(position + 1, domain.MAX_POSITION)
                spots = positions.setdefault(lexeme, [])
                if len(spots) < 256 and (not spots or spots[-1] != position):
                    spots.append(position)
        position += 1
    for char in singles - positions.keys():
        positions[char] = [min(position + 1, domain.MAX_POSITION)]
    return positions


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(alphabet="薬事承認の相談ア々ＡＩ abc12-_", max_size=60),
            st.builds(
                lambda unit, times: unit * times,
                st.sampled_from(["薬事 ", "ab ", "承認", "x" * 101]),
                st.integers(0, 9000),
            ),
        ),
        max_size=6,
    )
)
def test_a_search_document_gathers_each_lexemes_positions_as_the_plain_walk_does(texts: list[str | None]) -> None:
    """The document is built from one stream of lexemes for speed; it must say what the plain walk says,
    past the last position and past 256 positions a lexeme too."""
    assert domain.SearchDocument.of(texts).positions == _walked(texts)


def test_a_csv_cell_excel_would_run_as_a_formula_is_written_as_text() -> None:
    assert spreadsheet_safe('=HYPERLINK("http://evil.example","x")') == '\'=HYPERLINK("http://evil.example","x")'
    assert spreadsheet_safe("+81 3 1234 5678") == "'+81 3 1234 5678"
    assert spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_safe("株式会社テスト") == "株式会社テスト"
    assert spreadsheet_safe("") == ""


def test_overdue_counts_japanese_business_days_holidays_included() -> None:
    """Three business days to screen: on Tuesday 24 November 2026 (Monday the 23rd is 勤労感謝の日), what came
    in on Tuesday the 17th is overdue, what came in on Wednesday the 18th is not."""
    cutoff = domain.overdue_before(datetime(2026, 11, 24, 15, tzinfo=domain.JAPAN))
    assert cutoff == datetime(2026, 11, 18, tzinfo=domain.JAPAN)
    assert domain.business_days(datetime(2026, 11, 17, 10, tzinfo=domain.JAPAN), cutoff + timedelta(days=6)) == 4
    assert domain.overdue_before(datetime(2026, 11, 28, 9, tzinfo=domain.JAPAN)) == datetime(
        2026, 11, 24, tzinfo=domain.JAPAN
    ), "a Saturday counts from the Friday before"
