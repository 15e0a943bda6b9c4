"""Rewards in mUSD and TFT units from cloud units, policy, certification and uptime.

Integers only, floor division in the reference's order. The market price is never used: TFT
come from the node's connection price (mUSD per TFT).
"""

from __future__ import annotations

from dataclasses import dataclass

from payouts.periods import PERIOD_LENGTH_S
from payouts.snapshot.schema import FarmingPolicy

TFT_UNITS_PER_TFT = 10**7
MILLION = 10**6
CERTIFIED_BONUS_NUMERATOR, CERTIFIED_BONUS_DENOMINATOR = 5, 4  # +25 % on policy 1
DIY_MIN_PERMILLE = 950
CERTIFIED_MIN_PERMILLE = 980


@dataclass(frozen=True, slots=True)
class Reward:
    musd: int
    tft_units: int


def uptime_permille(measured_uptime_s: int) -> int:
    return min(measured_uptime_s * 1000 // PERIOD_LENGTH_S, 1000)


def base_musd(cu_pm: int, su_pm: int, nu_pm: int, ip_seconds: int, policy: FarmingPolicy) -> int:
    """mUSD for a full period: unit prices per period, public IPs per IP-hour."""
    return (cu_pm * policy.cu + su_pm * policy.su + nu_pm * policy.nu) // MILLION + (ip_seconds * policy.ipv4 // 3600)


def scales_with_uptime(policy: FarmingPolicy) -> bool:
    """Policies 1 and 2 scale with uptime; so does a policy 3 set up like them (not default,
    not immutable, minimal uptime 95). Others follow the reference's quirk."""
    if policy.id in (1, 2):
        return True
    return policy.id == 3 and not policy.default and not policy.immutable and policy.minimal_uptime == 95


def node_reward(
    *,
    musd: int,
    connection_price_musd: int,
    permille: int,
    certified: bool,
    policy: FarmingPolicy,
) -> Reward:
    """Reward after the certification bonus and the uptime rules (SPEC section 4)."""
    if certified and policy.id == 1:
        musd = musd * CERTIFIED_BONUS_NUMERATOR // CERTIFIED_BONUS_DENOMINATOR
    tft_units = musd * TFT_UNITS_PER_TFT // connection_price_musd
    if scales_with_uptime(policy):
        minimum = CERTIFIED_MIN_PERMILLE if certified else DIY_MIN_PERMILLE
        if permille < minimum:
            return Reward(0, 0)
        return Reward(musd * permille // 1000, tft_units * permille // 1000)
    # the reference compares a permille with a percentage here: replicated on purpose
    if permille >= policy.minimal_uptime:
        return Reward(musd, tft_units)
    return Reward(0, 0)
