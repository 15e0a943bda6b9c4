"""Errors of the ledger. "Already done" outcomes form their own family so callers treat them
as success."""


class LedgerError(Exception):
    """Base error of the ledger."""


class InvalidTransition(LedgerError):
    """A status change that the transitions table does not allow."""


class StaleStatus(LedgerError):
    """The row moved on before this compare-and-set: someone else did the work first."""


class AlreadyDone(LedgerError):
    """The requested change is already in the ledger."""
