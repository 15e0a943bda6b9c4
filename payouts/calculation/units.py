"""Cloud units (CU, SU, NU) in millionths, exactly as minting_v3 computes them.

Unsigned integer arithmetic with floor division in the reference's order; GiB = 2**30.
"""

from __future__ import annotations

GIB = 2**30
MILLION = 10**6


def cu_pm(cru: int, mru_bytes: int, sru_bytes: int) -> int:
    """Compute units in millionths: the scarcest of cores, memory (less 1 GiB) and SSD."""
    by_cores = cru * 2 * GIB * MILLION
    by_memory = max(mru_bytes - GIB, 0) * MILLION // 4
    by_ssd = sru_bytes * MILLION // 50
    return max(min(by_cores, by_memory, by_ssd), 0) // GIB


def su_pm(hru_bytes: int, sru_bytes: int) -> int:
    """Storage units in millionths: HDD at 1/1200 and SSD at 1/250 per GiB."""
    return max(hru_bytes * MILLION // 1200 + sru_bytes * MILLION // 250, 0) // GIB


def nu_pm(nru_bytes: int) -> int:
    """Network units in millionths: GiB of public traffic."""
    return max(nru_bytes, 0) * MILLION // GIB
