"""TFT payout scheduler: proof-of-capacity receipts paid exactly once on Stellar."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tft-payouts")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

#: Written on every run and receipt row so a run can be reproduced with the same code.
CODE_VERSION = f"tft-payouts/{__version__}"
