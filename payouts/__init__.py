"""TFT payout scheduler: proof-of-capacity receipts paid exactly once on Stellar."""

from __future__ import annotations

from functools import cache


@cache
def _version() -> str:
    # read on first use: importlib.metadata is slow to import and `payouts --help` needs no version
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tft-payouts")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    #: Written on every run and receipt row so a run can be reproduced with the same code.
    if name == "CODE_VERSION":
        return f"tft-payouts/{_version()}"
    raise AttributeError(f"module 'payouts' has no attribute {name!r}")
