"""Faults the sandbox injects into submissions, by rate, from a seeded generator.

The spec is a comma-separated list of `name=rate` (rate between 0 and 1):

    504_after_apply=R      the transaction lands, the client gets 504 transaction_submission_timeout
    504_without_apply=R    the client gets 504 at once and the transaction is never queued
    drop_after_apply=R     the transaction lands, then the connection is closed without a reply
    delay=R:K              inclusion waits K more ledgers (a synchronous POST may time out)
    congestion=R           refused with tx_insufficient_fee, as when the queue is full
    restart=R              after a ledger closes, the server restarts: state is saved and
                           reloaded, queued transactions are lost, open connections dropped
    land_during_lookup=R   a lookup by hash of a transaction still queued answers 404, and the
                           ledger that includes it closes before the answer goes out: the
                           client's next read already sees it applied (its sequence used)
    lag=S                  a lagging replica: every read is served from a view S seconds
                           behind the chain (transactions not found yet, accounts with their
                           old sequence), and every synchronous submission is answered 504
                           after it is applied (S is seconds, not a rate)

Example: `504_after_apply=0.1,drop_after_apply=0.05,delay=0.1:3,congestion=0.05`.
Faults apply to new submissions only; resubmitting an included hash always answers from the
ledger, so a client that follows the exactly-once rules always converges.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class SubmitFault(StrEnum):
    timeout_after_apply = "504_after_apply"
    timeout_without_apply = "504_without_apply"
    drop_after_apply = "drop_after_apply"
    delay = "delay"
    congestion = "congestion"


#: the fault on lookups by hash (not a submission fault)
LAND_DURING_LOOKUP = "land_during_lookup"
_NAMES = {fault.value for fault in SubmitFault} | {"restart", "lag", LAND_DURING_LOOKUP}
#: the longest replica lag the sandbox models, in seconds
MAX_LAG_S = 3600.0


class FaultSpecError(ValueError):
    """The --faults text does not parse; the message names the bad entry."""


@dataclass(frozen=True)
class FaultSpec:
    rates: dict[str, float]
    delay_ledgers: int = 0
    lag_s: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        rates: dict[str, float] = {}
        delay_ledgers = 0
        lag_s = 0.0
        for entry in filter(None, (part.strip() for part in (text or "").split(","))):
            name, sep, value = entry.partition("=")
            name = name.strip()
            if not sep or name not in _NAMES:
                raise FaultSpecError(f"unknown fault {entry!r}; expected one of {sorted(_NAMES)}")
            if name == "lag":
                try:
                    lag_s = float(value)
                except ValueError:
                    raise FaultSpecError(f"lag takes a number of seconds, got {value!r}") from None
                if not 0.0 <= lag_s <= MAX_LAG_S:
                    raise FaultSpecError(f"lag must be between 0 and {MAX_LAG_S:g} seconds, got {value!r}")
                continue
            rate_text, _, extra = value.partition(":")
            try:
                rate = float(rate_text)
            except ValueError:
                raise FaultSpecError(f"rate of {name!r} is not a number: {rate_text!r}") from None
            if not 0.0 <= rate <= 1.0:
                raise FaultSpecError(f"rate of {name!r} must be between 0 and 1, got {rate}")
            if name == "delay":
                if not extra.isdigit() or int(extra) < 1:
                    raise FaultSpecError(f"delay needs RATE:LEDGERS with LEDGERS >= 1, got {value!r}")
                delay_ledgers = int(extra)
            elif extra:
                raise FaultSpecError(f"{name!r} takes a single rate, got {value!r}")
            rates[name] = rate
        return cls(rates, delay_ledgers, lag_s)

    def __str__(self) -> str:
        parts = []
        for name, rate in self.rates.items():
            parts.append(f"{name}={rate}:{self.delay_ledgers}" if name == "delay" else f"{name}={rate}")
        if self.lag_s:
            parts.append(f"lag={self.lag_s:g}")
        return ",".join(parts)


class FaultPlan:
    """Draws faults from a seeded generator, so a run with the same seed and the same order of
    submissions sees the same faults. Tests may also force the next fault."""

    def __init__(self, spec: FaultSpec | None = None, seed: int | None = None) -> None:
        #: told of every new spec (the server's read view follows its `lag`)
        self._listeners: list[Callable[[FaultSpec], None]] = []
        self.spec = spec or FaultSpec({})
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        #: forced faults in order, each with whether only a transaction that pays may draw it
        self._forced: list[tuple[SubmitFault, bool]] = []
        self._forced_landings = 0
        self.injected: dict[str, int] = {}

    @property
    def spec(self) -> FaultSpec:
        return self._spec

    @spec.setter
    def spec(self, spec: FaultSpec) -> None:
        # a spec set on a running server takes effect at once, the lag included; a spec that
        # leaves the lag as it was leaves alone a lag set on the read view itself
        previous = getattr(self, "_spec", None)
        self._spec = spec
        if previous is None or previous.lag_s != spec.lag_s:
            for listener in self._listeners:
                listener(spec)

    def on_spec(self, listener: Callable[[FaultSpec], None]) -> None:
        self._listeners.append(listener)

    def force(self, fault: SubmitFault, times: int = 1, *, payments_only: bool = True) -> None:
        """The next `times` submissions get `fault`; with `payments_only`, only submissions
        that carry a payment operation (a payer's own settings, such as its claim, go by)."""
        with self._lock:
            self._forced.extend([(fault, payments_only)] * times)

    def next_submit_fault(self, *, pays: bool = True) -> SubmitFault | None:
        """The fault for the next submission; `pays`: it carries a payment operation."""
        with self._lock:
            if self._forced and (pays or not self._forced[0][1]):
                fault: SubmitFault | None = self._forced.pop(0)[0]
            else:
                fault = None
                for candidate in SubmitFault:
                    rate = self.spec.rates.get(candidate.value, 0.0)
                    if rate and self._random.random() < rate:
                        fault = candidate
                        break
            if fault is not None:
                self.injected[fault.value] = self.injected.get(fault.value, 0) + 1
            return fault

    def force_landing_during_lookup(self, times: int = 1) -> None:
        with self._lock:
            self._forced_landings += times

    def land_during_lookup_now(self) -> bool:
        """Drawn only when a lookup by hash misses a transaction that is still queued."""
        rate = self.spec.rates.get(LAND_DURING_LOOKUP, 0.0)
        with self._lock:
            if self._forced_landings:
                self._forced_landings -= 1
                hit = True
            else:
                hit = bool(rate) and self._random.random() < rate
            if hit:
                self.injected[LAND_DURING_LOOKUP] = self.injected.get(LAND_DURING_LOOKUP, 0) + 1
            return hit

    def restart_now(self) -> bool:
        rate = self.spec.rates.get("restart", 0.0)
        with self._lock:
            hit = bool(rate) and self._random.random() < rate
            if hit:
                self.injected["restart"] = self.injected.get("restart", 0) + 1
            return hit
