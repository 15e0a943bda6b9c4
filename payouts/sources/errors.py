"""Errors of the snapshot sources: one base, and one family the monthly job treats as "later".

`SnapshotUnavailable` means the period's input is not there yet (no file in the drop folder,
an indexer that has not processed the post-period window): the caller tries again tomorrow.
Everything else is a `SourceError` an operator has to look at.
"""

from __future__ import annotations


class SourceError(Exception):
    """Base of every error raised while freezing a period's snapshot."""


class SnapshotUnavailable(SourceError):
    """The period's input is not there yet; try again later."""


class IndexerBehind(SnapshotUnavailable):
    """The indexer has not processed the chain past the end of the post-period window."""

    def __init__(self, message: str, *, height: int | None, processed_ts: int | None, needed_ts: int) -> None:
        self.height = height
        self.processed_ts = processed_ts
        self.needed_ts = needed_ts
        super().__init__(message)


class IndexerUnreachable(SourceError):
    """Connection errors, timeouts or 5xx answers outlasted the bounded retries."""


class IndexerQueryError(SourceError):
    """The server refused a query (4xx, GraphQL errors, an answer that is not JSON)."""


class IndexerDataError(SourceError):
    """A record the indexer returned is malformed; names the entity, the record and the field."""

    def __init__(self, entity: str, where: str, problem: str) -> None:
        self.entity = entity
        self.where = where
        self.problem = problem
        super().__init__(f"{entity}: {where}: {problem}")


class CrossCheckFailed(SourceError):
    """The indexer and the grid proxy disagree by more than the tolerance."""


class DropFolderAmbiguous(SourceError):
    """More than one file in the drop folder claims the same period."""
