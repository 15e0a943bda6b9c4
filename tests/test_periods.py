from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.periods import PERIOD_LENGTH_S, Period, PeriodError, offset_for_label, resolve_period


def test_offset_81_is_january_2025_with_the_formula_bounds():
    period = Period.from_label("2025-01")
    assert period.offset == 81
    assert (period.start_ts, period.end_ts) == (1735602280, 1738233160)
    assert period.end_ts - period.start_ts == PERIOD_LENGTH_S


def test_first_treasury_month_and_the_origin():
    assert offset_for_label("2022-01") == 45
    assert offset_for_label("2025-11") == 91
    assert Period(0).start == datetime(2018, 3, 31, 12, 56, 40, tzinfo=UTC)
    assert Period(91).window_end_ts == Period(91).end_ts + 27 * 3600


def test_both_ends_are_inclusive():
    period = Period(81)
    assert period.contains(period.start_ts) and period.contains(period.end_ts)
    assert not period.contains(period.start_ts - 1) and not period.contains(period.end_ts + 1)


@pytest.mark.parametrize("label", ["2025-13", "2025-00", "25-11", "2025/11", "", "2017-12"])
def test_bad_labels_say_what_is_wrong(label):
    with pytest.raises(PeriodError, match="period"):
        offset_for_label(label)


def test_exactly_one_of_label_or_offset():
    assert resolve_period("2025-11") == resolve_period(offset=91)
    with pytest.raises(PeriodError):
        resolve_period("2025-11", 91)
    with pytest.raises(PeriodError):
        resolve_period()
    with pytest.raises(PeriodError):
        resolve_period(offset=-1)


@given(st.integers(min_value=0, max_value=5000))
def test_label_and_offset_round_trip(offset):
    period = Period(offset)
    assert Period.from_label(period.label) == period
    assert Period.containing(period.start_ts) == period
    assert Period.containing(period.end_ts - 1) == period
