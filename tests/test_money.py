import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.money import UNITS_PER_TFT, format_tft, format_usd, parse_tft


def test_format_has_exactly_seven_decimals():
    assert format_tft(1_807_625_000) == "180.7625000"
    assert format_tft(1) == "0.0000001"
    assert format_tft(0) == "0.0000000"
    assert format_usd(14_461) == "$14.461"


def test_floats_are_refused():
    with pytest.raises(TypeError):
        format_tft(1.5)
    with pytest.raises(TypeError):
        format_tft(True)


@pytest.mark.parametrize("text", ["1.00000001", "-1", "1e7", "", "1,5", "0x10"])
def test_parse_refuses_what_is_not_a_7_decimal_amount(text):
    with pytest.raises(ValueError):
        parse_tft(text)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_round_trip_is_exact(amount_units):
    text = format_tft(amount_units)
    assert parse_tft(text) == amount_units
    assert isinstance(parse_tft(text), int)
    assert text.split(".")[0] == str(amount_units // UNITS_PER_TFT)
