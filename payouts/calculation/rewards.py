"""Rewards in mUSD and TFT units from cloud units, policy, certification and uptime.

Integers only, floor division in the reference's order. The market price is never used: TFT
come from the node's connection price (mUSD per TFT).

minting_v3 does this arithmetic on u64, which wraps silently past 2^64 - 1. Every product and
sum it forms is checked here in the same order; where it would wrap, `RewardOverflow` is raised
and the node becomes `invalid_record`, never a wrapped amount.
"""

from __future__ import annotations

from dataclasses import dataclass

from payouts.calculation.units import MILLION
from payouts.money import UNITS_PER_TFT
from payouts.periods import PERIOD_LENGTH_S
from payouts.snapshot.schema import U64_MAX, FarmingPolicy

CERTIFIED_BONUS_NUMERATOR, CERTIFIED_BONUS_DENOMINATOR = 5, 4  # +25 % on policy 1
DIY_MIN_PERMILLE = 950
CERTIFIED_MIN_PERMILLE = 980


OVERFLOW_REASON = "reward overflows minting's u64 arithmetic"


class RewardOverflow(ArithmeticError):
    """minting_v3's u64 money arithmetic would wrap for this node."""

    def __init__(self, step: str) -> None:
        self.step = step
        super().__init__(f"{OVERFLOW_REASON} ({step})")


def _u64(value: int, step: str) -> int:
    if value > U64_MAX:
        raise RewardOverflow(step)
    return value


@dataclass(frozen=True, slots=True)
class Reward:
    musd: int
    tft_units: int


def uptime_permille(measured_uptime_s: int) -> int:
    return min(measured_uptime_s * 1000 // PERIOD_LENGTH_S, 1000)


def base_musd(cu_pm: int, su_pm: int, nu_pm: int, ip_seconds: int, policy: FarmingPolicy) -> int:
    """mUSD for a full period: unit prices per period, public IPs per IP-hour.

    Raises RewardOverflow where minting's u64 arithmetic would wrap."""
    cu_reward = _u64(cu_pm * policy.cu, "cu x policy cu")
    su_reward = _u64(su_pm * policy.su, "su x policy su")
    nu_reward = _u64(nu_pm * policy.nu, "nu x policy nu")
    ip_reward = _u64(ip_seconds * policy.ipv4, "ip_seconds x policy ipv4") // 3600
    units = _u64(_u64(cu_reward + su_reward, "cu + su rewards") + nu_reward, "cu + su + nu rewards")
    return _u64(units // MILLION + ip_reward, "unit + ip rewards")


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
    """Reward after the certification bonus and the uptime rules (SPEC section 4).

    Raises RewardOverflow where minting's u64 arithmetic would wrap."""
    scaled = scales_with_uptime(policy)
    if not scaled and permille < policy.minimal_uptime:
        # the reference compares a permille with a percentage here: replicated on purpose
        return Reward(0, 0)  # (and computes no amount, so nothing can overflow)
    if certified and policy.id == 1:
        musd = _u64(musd * CERTIFIED_BONUS_NUMERATOR, "certified bonus") // CERTIFIED_BONUS_DENOMINATOR
    tft_units = _u64(musd * UNITS_PER_TFT, "musd x 10^7") // connection_price_musd
    if scaled:
        musd_scaled = _u64(musd * permille, "musd x uptime permille") // 1000
        tft_scaled = _u64(tft_units * permille, "tft x uptime permille") // 1000
        minimum = CERTIFIED_MIN_PERMILLE if certified else DIY_MIN_PERMILLE
        if permille < minimum:
            return Reward(0, 0)
        return Reward(musd_scaled, tft_scaled)
    return Reward(musd, tft_units)
