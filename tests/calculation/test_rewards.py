"""Cloud units and rewards: the SPEC's worked example and every reward rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.calculation.rewards import base_musd, node_reward, scales_with_uptime, uptime_permille
from payouts.calculation.units import GIB, cu_pm, nu_pm, su_pm
from payouts.snapshot.schema import FarmingPolicy
from tests.factories import POLICY_CERTIFIED, POLICY_DIY

DIY = FarmingPolicy(**POLICY_DIY)
CERTIFIED = FarmingPolicy(**POLICY_CERTIFIED)


def policy(**overrides) -> FarmingPolicy:
    return FarmingPolicy(**{**POLICY_DIY, **overrides})


def test_worked_example_units_and_full_reward():
    cu, su = cu_pm(4, 16 * GIB, 512 * GIB), su_pm(4096 * GIB, 512 * GIB)
    assert (cu, su) == (3_750_000, 5_461_333)
    musd = base_musd(cu, su, 0, 0, DIY)
    assert musd == 14_461
    full = node_reward(musd=musd, connection_price_musd=80, permille=1000, certified=False, policy=DIY)
    assert (full.musd, full.tft_units) == (14_461, 1_807_625_000)


def test_worked_example_at_999_permille_scales_the_unscaled_tft():
    assert uptime_permille(2_628_780) == 999
    reward = node_reward(musd=14_461, connection_price_musd=80, permille=999, certified=False, policy=DIY)
    assert (reward.musd, reward.tft_units) == (14_446, 1_805_817_375)


def test_units_take_the_scarcest_resource_and_network_and_ips():
    assert cu_pm(1, 512 * GIB, 10_000 * GIB) == 2_000_000  # cores limit
    assert cu_pm(64, 5 * GIB, 10_000 * GIB) == 1_000_000  # memory less 1 GiB, / 4
    assert cu_pm(64, 512 * GIB, 100 * GIB) == 2_000_000  # SSD / 50
    assert nu_pm(3 * GIB) == 3_000_000
    assert base_musd(0, 0, 0, 2 * 3600, DIY) == 10  # 2 IP-hours at 5 mUSD


@pytest.mark.parametrize(
    ("certified", "permille", "expected_musd"),
    [(False, 950, 14_461 * 950 // 1000), (False, 949, 0), (True, 980, 18_076 * 980 // 1000), (True, 979, 0)],
)
def test_sla_thresholds_on_policy_1_with_the_certified_bonus(certified, permille, expected_musd):
    reward = node_reward(musd=14_461, connection_price_musd=80, permille=permille, certified=certified, policy=DIY)
    assert reward.musd == expected_musd


def test_certified_bonus_only_on_policy_1():
    on_1 = node_reward(musd=1000, connection_price_musd=80, permille=1000, certified=True, policy=DIY)
    on_2 = node_reward(musd=1000, connection_price_musd=80, permille=1000, certified=True, policy=CERTIFIED)
    assert (on_1.musd, on_2.musd) == (1250, 1000)
    assert on_1.tft_units == 1250 * 10**7 // 80


def test_other_policies_follow_the_reference_quirk():
    quirky = policy(id=7, default=False, minimal_uptime=95)
    assert not scales_with_uptime(quirky)
    # permille compared with a percentage: 9.5 % uptime pays in full, unscaled
    paid = node_reward(musd=1000, connection_price_musd=80, permille=95, certified=False, policy=quirky)
    assert (paid.musd, paid.tft_units) == (1000, 1000 * 10**7 // 80)
    assert node_reward(musd=1000, connection_price_musd=80, permille=94, certified=False, policy=quirky).musd == 0


def test_policy_3_set_up_like_1_and_2_scales_with_uptime():
    assert scales_with_uptime(policy(id=3, default=False, immutable=False, minimal_uptime=95))
    assert not scales_with_uptime(policy(id=3, default=True, immutable=False, minimal_uptime=95))
    assert not scales_with_uptime(policy(id=3, default=False, immutable=True, minimal_uptime=95))
    assert not scales_with_uptime(policy(id=3, default=False, immutable=False, minimal_uptime=90))


def test_connection_price_sets_the_tft_amount():
    reward = node_reward(musd=14_461, connection_price_musd=100, permille=1000, certified=False, policy=DIY)
    assert reward.tft_units == 14_461 * 10**7 // 100


@given(st.integers(0, 10**9), st.integers(950, 999), st.integers(1, 10**6), st.booleans())
def test_rewards_are_integers_and_monotone_in_uptime_above_the_sla(musd, permille, price, certified):
    low = node_reward(musd=musd, connection_price_musd=price, permille=permille, certified=False, policy=DIY)
    high = node_reward(musd=musd, connection_price_musd=price, permille=permille + 1, certified=False, policy=DIY)
    assert type(low.musd) is int and type(low.tft_units) is int
    assert high.musd >= low.musd and high.tft_units >= low.tft_units


@given(st.integers(0, 10 * 2_630_880))
def test_permille_is_capped_at_1000(uptime_s):
    assert 0 <= uptime_permille(uptime_s) <= 1000
