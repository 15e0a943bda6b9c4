"""The farmer export's rows (SPEC section 7): one entry per receipt, retry and correction.

The package splits the rows by job: `columns` (what an entry holds), `query` (which entries,
read how), `proofs` (Merkle inclusion proofs), `notes` (what a status means, in the farmer's
words) and `entries` (the streamed entries and the runs document).
"""

from payouts.export.rows.columns import CURRENCY, FARMER_FIELDS, FIELDS
from payouts.export.rows.entries import iso_utc, iter_entries, runs_document
from payouts.export.rows.notes import HOLD_FIX, HOLD_WORDS, farmer_status, uptime_percent
from payouts.export.rows.proofs import ProofSource, all_inclusion_proofs
from payouts.export.rows.query import ExportFilter, next_retry_period, periods_of_run_entries

__all__ = [
    "CURRENCY",
    "FARMER_FIELDS",
    "FIELDS",
    "HOLD_FIX",
    "HOLD_WORDS",
    "ExportFilter",
    "ProofSource",
    "all_inclusion_proofs",
    "farmer_status",
    "iso_utc",
    "iter_entries",
    "next_retry_period",
    "periods_of_run_entries",
    "runs_document",
    "uptime_percent",
]
